# Shared by scripts/test and scripts/run-example: build the pinned virtual environments with uv.
PYTHON=${PYTHON:-python3}
export UV_PYTHON_DOWNLOADS=never

if ! command -v uv >/dev/null 2>&1; then
  if [ ! -x .venv-tools/bin/uv ]; then
    "$PYTHON" -m venv .venv-tools
    .venv-tools/bin/pip install --quiet uv
  fi
  export PATH="$PWD/.venv-tools/bin:$PATH"
fi

make_env() {  # make_env DIR CONSTRAINTS EXTRAS: (re)build DIR when pyproject or constraints change
  local dir=$1 constraints=$2 extras=$3 stamp
  stamp="$(cat pyproject.toml "$constraints" | sha256sum | cut -c1-16)-$extras"
  if [ "$(cat "$dir/.kie-stamp" 2>/dev/null)" != "$stamp" ]; then
    uv venv --quiet --allow-existing --python "$PYTHON" "$dir"
    uv pip install --quiet --python "$dir/bin/python" -c "$constraints" -e ".[$extras]"
    echo "$stamp" > "$dir/.kie-stamp"
  fi
}
