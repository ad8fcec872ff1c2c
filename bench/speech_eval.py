"""Run the configured speech and speaker engines on any local audio file, through the same stage
functions the assets use, and score them when references are given.

    .venv/bin/python bench/speech_eval.py --audio FILE [--ref-text TXT] [--ref-rttm RTTM]
                                          [--out DIR]

Last line: WER=<value> DER=<value> rtf=<value> (NA for a metric without its reference). With
--out, the hypothesis transcript (<name>.txt, <name>.words.json) and RTTM (<name>.rttm) are
written there for a person to inspect.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from media_assets.video import media as media_files
from media_assets.video.scoring import der, read_rttm, wer
from media_assets.video.speakers import assign_speakers, to_rttm
from resources import build_resources


def evaluate(
    audio: Path, ref_text: Path | None, ref_rttm: Path | None, out: Path | None = None
) -> dict[str, str]:
    resources = build_resources()
    with tempfile.TemporaryDirectory(prefix="speech-eval-") as tmp:
        probe = media_files.probe(audio, media_files.MediaLimits())
        normalized = media_files.normalize_audio(audio, Path(tmp))
        transcript = resources["speech"].transcribe(normalized.path_16k)
        turns = resources["diarizer"].diarize(normalized.path_16k)
    words = assign_speakers(transcript.words, turns)
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{audio.stem}.txt").write_text(transcript.text + "\n")
        (out / f"{audio.stem}.words.json").write_text(
            json.dumps([w.__dict__ for w in words], indent=1)
        )
        (out / f"{audio.stem}.rttm").write_text(to_rttm(turns, audio.stem))
    return {
        "WER": f"{wer(ref_text.read_text(), transcript.text):.4f}" if ref_text else "NA",
        "DER": f"{der(read_rttm(ref_rttm.read_text()), turns):.4f}" if ref_rttm else "NA",
        "rtf": f"{transcript.seconds / max(probe.duration_s, 1e-9):.3f}",
        "speakers": str(len({t.speaker for t in turns})),
        "engines": f"{resources['speech'].engine_id} + {resources['diarizer'].engine_id}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--audio", type=Path, required=True)
    parser.add_argument("--ref-text", type=Path)
    parser.add_argument("--ref-rttm", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    for path in (args.audio, args.ref_text, args.ref_rttm):
        if path and not path.is_file():
            raise SystemExit(f"error: {path} does not exist")
    scores = evaluate(args.audio, args.ref_text, args.ref_rttm, args.out)
    print(f"engines: {scores['engines']}; speakers found: {scores['speakers']}")
    print(f"WER={scores['WER']} DER={scores['DER']} rtf={scores['rtf']}")


if __name__ == "__main__":
    main()
