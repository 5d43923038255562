"""Transcriber loading paths the notebook does not cover: the note-only ByteDance checkpoint layout, a checkpoint that
pickles more than tensors, and registering a custom transcriber."""
import numpy as np
import pytest
import torch
from hsmad.midi import Notes
from hsmad.eval.transcribe import (ByteDancePianoTranscriber, Transcriber, get_transcriber, register_transcriber, TRANSCRIBERS,
                              notes_from_events)


@pytest.fixture(scope='module')
def note_state_dict():
    from piano_transcription_inference.models import Regress_onset_offset_frame_velocity_CRNN
    torch.manual_seed(1)
    return Regress_onset_offset_frame_velocity_CRNN(frames_per_second=100, classes_num=88).state_dict()


def test_note_only_checkpoint_and_trusted(tmp_path, note_state_dict):
    torch.save({'model': note_state_dict}, tmp_path / 'note_only.pth')            # training-repo layout
    t = ByteDancePianoTranscriber(tmp_path / 'note_only.pth', segment_seconds=1.0)
    for k, v in note_state_dict.items(): assert torch.equal(v, t.model.state_dict()[k]), k
    assert (t.name, t.has_velocity, t.sample_rate) == ('bytedance-piano', True, 16000)
    # a checkpoint that pickles a non-tensor object (as training checkpoints with sampler state do)
    torch.save({'model': note_state_dict, 'sampler': {'rng': np.random.RandomState(0)}}, tmp_path / 'pickled.pth')
    with pytest.raises(ValueError, match='trusted=True'):
        ByteDancePianoTranscriber(tmp_path / 'pickled.pth')
    t2 = ByteDancePianoTranscriber(tmp_path / 'pickled.pth', trusted=True, segment_seconds=1.0)
    notes = t2.transcribe(np.zeros(16000 * 2, np.float32), 16000)
    assert isinstance(notes, Notes)


def test_register_transcriber():
    class Fixed(Transcriber):
        name, sample_rate, has_velocity = 'fixed', 8000, True
        def _transcribe(self, audio):
            return notes_from_events([60], [0.0], [len(audio) / self.sample_rate], [90])
    register_transcriber('fixed', Fixed)
    try:
        n = get_transcriber('fixed').transcribe(np.zeros(16000), 16000)   # resampled to 8 kHz: 1 s
        assert list(n.pitch) == [60] and abs(n.end[0] - 1.0) < 1e-6
    finally:
        TRANSCRIBERS.pop('fixed')
