"""One module per `renkei` subcommand; each exposes `register(subparsers)`."""
