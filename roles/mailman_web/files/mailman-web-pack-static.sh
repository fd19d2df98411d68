#!/bin/sh
# mailman-web-pack-static.sh STATIC_ROOT ARCHIVE: pack mailman3-web's static files into ARCHIVE with a
# fixed order, owner and time, so the same files always give the same archive (the proxy's copy is
# fetched only when a file changed).
set -eu
root=$1
archive=$2
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$root" -cf "$archive.new" .
mv "$archive.new" "$archive"
