"""The run's settings object (flags over environment over defaults, frozen, checked) and the hooks."""
import dataclasses

import pytest

from firecaffe.core.hooks import Hooks
from firecaffe.core.options import RunOptions, read_environment
from firecaffe.errors import FirecaffeError


def test_flags_win_over_the_environment_and_the_environment_over_the_defaults():
    env = {"FIRECAFFE_WAIT": "sleep", "FIRECAFFE_BUCKET_WAIT": "spin", "FIRECAFFE_CUDA_AWARE_MPI": "1"}
    options = RunOptions.build(env, comm="ring", bucket_mb=None, wait=None)
    assert (options.comm, options.wait, options.bucket_wait, options.cuda_aware_mpi) == ("ring", "sleep", "spin", True)
    assert options.bucket_mb == 0.0                                   # None means "not given"
    assert RunOptions.build(env, wait="spin").wait == "spin"
    assert RunOptions.build({}) == RunOptions()


def test_options_are_frozen_and_a_bad_value_or_name_is_refused_at_once():
    options = RunOptions()
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.comm = "ring"
    with pytest.raises(FirecaffeError, match="sigint_effect 'halt': choose one of stop, snapshot, none"):
        RunOptions(sigint_effect="halt")
    with pytest.raises(FirecaffeError, match="FIRECAFFE_BUCKET_WAIT='busy'"):
        RunOptions.build({"FIRECAFFE_BUCKET_WAIT": "busy"})
    with pytest.raises(TypeError, match="no setting.*bucket_size"):
        RunOptions.build({}, bucket_size=4)


def test_the_process_environment_is_read_in_one_place_with_one_clear_error():
    env = read_environment({"FIRECAFFE_ELTWISE_THREADS": "500", "FIRECAFFE_DECODE_THREADS": "0",
                            "FIRECAFFE_NO_PROGRESS": "1", "FIRECAFFE_LOG_LEVEL": "DEBUG"})
    assert (env.eltwise_threads, env.decode_threads, env.no_progress, env.log_level) == (64, 0, True, "DEBUG")
    assert read_environment({}).decode_threads is None
    with pytest.raises(FirecaffeError, match="FIRECAFFE_DECODE_THREADS='two': give a whole number"):
        read_environment({"FIRECAFFE_DECODE_THREADS": "two"})


def test_hooks_fire_in_the_order_added_and_can_be_removed():
    hooks, calls = Hooks("after_forward"), []
    first = hooks.add("after_forward", lambda i: calls.append(("first", i)))
    hooks.add("after_forward", lambda i: calls.append(("second", i)))
    hooks.fire("after_forward", 3)
    hooks.remove("after_forward", first)
    hooks.fire("after_forward", 4)
    assert calls == [("first", 3), ("second", 3), ("second", 4)]
    with pytest.raises(ValueError, match="no hook named 'after_froward'; there are after_forward"):
        hooks.add("after_froward", print)
    with pytest.raises(TypeError, match="must be callable"):
        hooks.add("after_forward", 3)
