"""A new user's first hour on the command line (issue 31): exit codes and messages for bad input, options that do
what they say, progress in a log file, help that teaches, and a result line that says what was done."""

from __future__ import annotations

import argparse
import json
import types
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from brainlesioncl.cli.main import EXAMPLES, INTERNAL_COMMANDS, build_parser, main


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _mask_file(tmp_path: Path, like: Path) -> Path:
    image = sitk.ReadImage(str(like))
    mask = sitk.Cast(image > float(np.percentile(sitk.GetArrayViewFromImage(image), 90)), sitk.sitkUInt8)
    path = tmp_path / "lesion_mask.nii.gz"
    sitk.WriteImage(mask, str(path))
    return path


# -- bad input: exit 2, one error style, the option as typed and the fix -----------------------------------------------
def test_identify_a_missing_file_is_an_error(capsys, tmp_path) -> None:
    code, _out, err = _run(capsys, "identify", str(tmp_path / "nothere.nii.gz"))
    assert code == 2 and err.startswith("error: file not found:") and "nothere.nii.gz" in err


def test_a_label_map_given_as_an_image_is_refused(capsys, registry, tiny_version, flair_t1_files, tmp_path) -> None:
    mask = _mask_file(tmp_path, flair_t1_files["flair"])
    code, _out, err = _run(capsys, "--registry", str(registry.root), "segment", "--input", f"FLAIR={mask}", "-o",
                           str(tmp_path / "seg.nii.gz"), "--device", "cpu")
    assert code == 2 and "error: FLAIR: holds only the values 0, 1: it is a label map or mask" in err
    assert not (tmp_path / "seg.nii.gz").exists()


def test_prepare_names_its_own_option_for_a_missing_folder(capsys, flair_t1_files, tmp_path) -> None:
    code, _out, err = _run(capsys, "prepare", "--input", f"FLAIR={flair_t1_files['flair']}", "--output-dir",
                           str(tmp_path / "not_there"))
    assert code == 2 and f"error: --output-dir {tmp_path / 'not_there'} does not exist" in err


def test_messages_speak_the_command_line_first(capsys, registry, tiny_version, flair_t1_files, tmp_path) -> None:
    out = tmp_path / "seg.nii.gz"
    out.write_bytes(b"a colleague's file")
    code, _out, err = _run(capsys, "--registry", str(registry.root), "segment", "--input",
                           f"FLAIR={flair_t1_files['flair']}", "-o", str(out), "--device", "cpu")
    assert code == 2 and "add --overwrite to replace it" in err and out.read_bytes() == b"a colleague's file"


def test_global_options_are_accepted_after_the_command(capsys, registry, tiny_version) -> None:
    code, out, _err = _run(capsys, "models", "list", "--registry", str(registry.root), "-v")
    assert code == 0 and tiny_version in out
    args = build_parser().parse_args(["segment", "-v", "--registry", "R"])
    assert args.verbose is True and args.registry == "R"
    args = build_parser().parse_args(["--registry", "R", "segment"])
    assert args.registry == "R" and args.verbose is False


def test_demo_never_replaces_an_earlier_demo_silently(capsys, registry, tiny_version, tmp_path) -> None:
    folder = tmp_path / "demo_output"
    folder.mkdir()
    (folder / "summary.json").write_text("{}")
    code, _out, err = _run(capsys, "--registry", str(registry.root), "demo", "--output-dir", str(folder))
    assert code == 2 and "holds an earlier demo's results" in err and "--overwrite" in err
    assert (folder / "summary.json").read_text() == "{}"


# -- what a result says ------------------------------------------------------------------------------------------------
def test_the_result_line_names_every_file_the_unsure_lesions_and_the_route(capsys, registry, tiny_version,
                                                                          flair_t1_files, tmp_path) -> None:
    files = [tmp_path / "seg.nii.gz", tmp_path / "unsure.nii.gz", tmp_path / "lesions.json"]
    code, out, err = _run(capsys, "--registry", str(registry.root), "segment", "--input",
                          f"FLAIR={flair_t1_files['flair']}", "-d", "metastasis", "-o", str(files[0]),
                          "--uncertainty", str(files[1]), "--report", str(files[2]), "--device", "cpu")
    assert code == 0, err
    line = next(text for text in out.splitlines() if text.startswith("Wrote "))
    assert all(str(f) in line for f in files) and " unsure)" in line
    assert "route metastasis, on the tumour experts (no two-stage metastasis model is installed)" in line
    rows = json.loads(files[2].read_text())["lesions"]
    assert line.count("lesion(s)") == 1 and f"({sum(bool(r['unsure']) for r in rows)} unsure)" in line


def test_an_unsure_automatic_choice_is_reported_as_the_mix_it_used() -> None:
    from brainlesioncl.cli.segment import route_description
    from brainlesioncl.inference import RoutingDecision

    unsure = types.SimpleNamespace(routing=RoutingDecision("unknown", {"MS": 0.5, "WMH": 0.4, "tumour": 0.1}, False),
                                   disease="unknown")
    assert route_description(unsure, None) == "auto, unsure: a mix of the routings (MS 50%, WMH 40%, tumour 10%)"
    sure = types.SimpleNamespace(routing=RoutingDecision("MS", {"MS": 0.9, "WMH": 0.1}, True), disease="MS")
    assert route_description(sure, None) == "auto: MS"
    neutral = types.SimpleNamespace(routing=None, disease="unknown")
    assert route_description(neutral, None) == "unknown: an even mix of every disease routing"


def test_curated_inputs_are_not_described_as_extracted_here() -> None:
    from brainlesioncl.preparation import quality_lines

    qc = {"inputs": {"FLAIR": {"brain_extracted": True, "slice_thickness_mm": 1.0},
                     "T1": {"brain_extracted": False, "slice_thickness_mm": 5.0}}}
    assert quality_lines(qc)[:2] == ["FLAIR: already brain-extracted (used as given), slices 1.0 mm",
                                     "T1: raw (skull on), slices 5.0 mm"]


# -- progress off a terminal -------------------------------------------------------------------------------------------
def test_progress_off_a_terminal_is_plain_lines_on_stderr(capsys, registry, tiny_version, flair_t1_files,
                                                          tmp_path) -> None:
    """Under pytest stderr is not a terminal, as with ``> log 2>&1``: the default is one line per stage."""
    code, _out, err = _run(capsys, "--registry", str(registry.root), "segment", "--input",
                           f"FLAIR={flair_t1_files['flair']}", "-o", str(tmp_path / "seg.nii.gz"), "--device", "cpu")
    assert code == 0
    lines = err.strip().splitlines()
    assert lines[0].startswith("[  0.0%] ") and lines[-1] == "[100.0%] done" and "\r" not in err


def test_every_epoch_gets_its_line_and_a_burst_of_stages_does_not(capsys, monkeypatch) -> None:
    from brainlesioncl.cli import common

    clock = iter([0.0, 0.1, 0.2, 0.3, 0.4, 3.0])
    monkeypatch.setattr(common.time, "monotonic", lambda: next(clock))
    printer = common.progress_printer("lines")
    for fraction, stage in [(0.0, "reading images"), (0.01, "window 1/9"), (0.5, "epoch 1/2 loss 0.5"),
                            (1.0, "epoch 2/2 loss 0.4"), (1.0, "epoch 2/2 loss 0.4"), (0.0, "writing")]:
        printer(fraction, stage)
    assert capsys.readouterr().err.splitlines() == ["[  0.0%] reading images", "[ 50.0%] epoch 1/2 loss 0.5",
                                                    "[100.0%] epoch 2/2 loss 0.4", "[  0.0%] writing"]


# -- help --------------------------------------------------------------------------------------------------------------
def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield (*path, name), child
                yield from _commands(child, (*path, name))


def test_every_option_has_help_and_every_command_examples() -> None:
    parser = build_parser()
    for path, command in _commands(parser):
        if path[0] in INTERNAL_COMMANDS:
            continue
        undocumented = [a.option_strings or a.dest for a in command._actions
                        if not a.help and a.dest != "help" and not isinstance(a, argparse._SubParsersAction)]
        assert not undocumented, f"{' '.join(path)}: {undocumented} have no help"
        has_subcommands = any(isinstance(a, argparse._SubParsersAction) for a in command._actions)
        if len(path) == 1 and not has_subcommands or path[0] in ("models", "federated") and len(path) == 1:
            assert "examples:" in (command.epilog or ""), f"{' '.join(path)} shows no example"
    assert set(EXAMPLES) | INTERNAL_COMMANDS >= {p[0] for p, _c in _commands(parser)}


def test_help_shows_defaults_hides_internal_commands_and_speaks_to_users(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["episode", "--help"])
    text = capsys.readouterr().out
    flat = " ".join(text.split())
    assert "(default: 20)" in flat and "(default: 64)" in flat and "(default: 0.001)" in flat
    assert "examples:\n  brainlesioncl episode cases/" in text
    with pytest.raises(SystemExit):
        main(["--help"])
    top = capsys.readouterr().out
    assert "worker" not in top and "examples:" in top
    with pytest.raises(SystemExit):
        main(["federated", "--help"])
    federated = capsys.readouterr().out
    assert "``" not in federated and "Ray" not in federated and "pip install -e '.[federated]'" in federated
