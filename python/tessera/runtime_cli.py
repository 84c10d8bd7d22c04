"""Runtime sub-commands of the ``tessera`` CLI: serve, keygen."""
from __future__ import annotations

import signal
import sys
from pathlib import Path


def _read_key(path: str) -> str:
    text = Path(path).read_text().split()
    if not text or len(text[0]) != 40:
        raise SystemExit(f"tessera: {path} does not hold a 40-character Z85 key")
    return text[0]


def cmd_serve(args):
    from .runtime import Server

    allowed = []
    for f in args.allow_keys_file or []:
        allowed += [line.split()[0] for line in Path(f).read_text().splitlines()
                    if line.strip() and not line.startswith("#")]
    secret = _read_key(args.curve_secret_key_file) if args.curve_secret_key_file else ""
    # Block the stop signals before the server's threads start, then wait for one here.
    stop = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop)
    srv = Server(args.repository, bind=args.bind, workers=args.workers, threads=args.threads,
                 curve_secret_key=secret, allowed_client_keys=allowed, verbose=args.verbose).start()
    print(f"tessera-server listening on {srv.endpoint} ({len(srv.models())} models, {args.workers} workers)",
          flush=True)
    signal.sigwait(stop)
    srv.stop()
    print(srv.stats().to_json(), flush=True)


def cmd_keygen(args):
    from .runtime import keygen

    public, secret = keygen()
    if args.out:
        Path(args.out + ".key").write_text(secret + "\n")
        Path(args.out + ".key").chmod(0o600)
        Path(args.out + ".pub").write_text(public + "\n")
        print(f"wrote {args.out}.key (secret) and {args.out}.pub (public)")
    else:
        print(f"public {public}\nsecret {secret}")


def register(sub):
    sp = sub.add_parser("serve", help="serve a repository of atom stores to devices (ZeroMQ)")
    sp.add_argument("repository", help="directory of atom stores (or one atom store)")
    sp.add_argument("--bind", default="tcp://127.0.0.1:*", help="ZeroMQ endpoint (default tcp://127.0.0.1:*)")
    sp.add_argument("--workers", type=int, default=1, help="worker threads (default 1)")
    sp.add_argument("--threads", type=int, default=1, help="LibTorch intra-op threads (default 1)")
    sp.add_argument("--curve-secret-key-file", help="turn CURVE on with this server secret key file")
    sp.add_argument("--allow-keys-file", action="append", help="file of allowed client public keys (one per line)")
    sp.add_argument("--verbose", action="store_true")
    sp.set_defaults(func=cmd_serve)
    sp = sub.add_parser("keygen", help="make a CURVE key pair")
    sp.add_argument("--out", help="write OUT.key (secret) and OUT.pub (public)")
    sp.set_defaults(func=cmd_keygen)
