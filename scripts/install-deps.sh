#!/usr/bin/env bash
# Installs the Debian packages LsKd uses: the data (Fashion-MNIST, FreeDict En->De), fonts for figures, the CPU
# peer for benchmarks (PyTorch with OpenBLAS, NLTK for BLEU), and the packages whose gettext catalogues
# (/usr/share/locale/{de,ru}/LC_MESSAGES) make the translation corpora (ParallelCorpus.DefaultDomains; Debian 12 names). Quiet and quick when everything is there already: it asks
# dpkg first and runs apt-get only for what is missing. Needs root, or sudo for the install step.
set -euo pipefail
packages=(dataset-fashion-mnist dict-freedict-eng-deu fonts-dejavu-core python3-torch libopenblas0-pthread python3-nltk)
catalogues=(adduser appstream apt at-spi2-common bash binutils-common coreutils diffutils dpkg findutils gettext gettext-base
    git gnupg-l10n grep gsettings-desktop-schemas iso-codes krb5-locales libapt-pkg6.0 libavahi-common-data libc-l10n
    libdpkg-perl libexif12 libgdk-pixbuf2.0-common libglib2.0-data libgphoto2-port12 libgstreamer-plugins-base1.0-0
    libgstreamer1.0-0 libgtk2.0-common libidn2-0 libpam-runtime libpq5 login make man-db packagekit postgresql-15
    postgresql-client-15 psmisc python-apt-common sed shared-mime-info software-properties-common systemd tar wget
    xdg-user-dirs xkb-data)
packages+=("${catalogues[@]}")

missing=()
for p in "${packages[@]}"; do
    if [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" != "installed" ]; then missing+=("$p"); fi
done
check_catalogues() {
    # Slim images tell dpkg to skip /usr/share/locale; the packages are then installed without their catalogues.
    for lang in de ru; do
        [ -f "/usr/share/locale/$lang/LC_MESSAGES/coreutils.mo" ] ||
            echo "install-deps: warning: no /usr/share/locale/$lang/LC_MESSAGES/coreutils.mo (dpkg path-exclude?); lskd translation needs the catalogues" >&2
    done
    return 0
}
[ ${#missing[@]} -eq 0 ] && { check_catalogues; exit 0; }

if ! command -v apt-get >/dev/null; then
    echo "install-deps: apt-get not found (Debian or Ubuntu needed) to install: ${missing[*]}" >&2
    echo "install-deps: elsewhere, put the Fashion-MNIST IDX files in a folder and pass --data-dir to lskd" >&2
    exit 2
fi
as_root=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "install-deps: run as root or install sudo (missing: ${missing[*]})" >&2; exit 2; }
    as_root=(sudo)
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -q >/dev/null
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
check_catalogues
