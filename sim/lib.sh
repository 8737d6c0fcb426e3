# Shared by the sim/ scripts (sourced, not run).

# Sets CARTWHEEL to the release binary: the caller's CARTWHEEL if given, else the one
# `cargo build --release` makes (in cargo's target directory, wherever that is).
# $1 names the calling script in messages.
cartwheel_binary() {
  if [ -z "${CARTWHEEL:-}" ]; then
    cargo build --release --quiet || exit 1
    CARTWHEEL=$(cargo metadata --format-version 1 --no-deps \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/cartwheel
  fi
  [ -x "$CARTWHEEL" ] || { echo "$1: no binary at $CARTWHEEL" >&2; exit 1; }
}
