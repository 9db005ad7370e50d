#!/bin/sh
# func-sizes.sh - the product's file and function sizes, for the limits in docs/ARCHITECTURE.md
# (no product file over 1,000 lines, no function over 150).
#
# usage: scripts/func-sizes.sh [TOP]   (run from the repository root; TOP defaults to 5)
# Prints the TOP longest product files and functions, then any over the limits, and exits 1
# when there is one. A function is counted from the line that opens it at column 0 (a
# definition's name line followed by "{" alone) to its closing "}" at column 0, the way the
# code is written here; it needs no compiler and no ctags.
top=${1:-5}
files=$(ls platform/*.c crypto/*.c sync/*.c agent/*.c hub/*.c platform/*.h crypto/*.h \
        sync/*.h agent/*.h hub/*.h 2>/dev/null)
status=0
echo "longest files:"
wc -l $files | grep -v ' total$' | sort -rn | head -n "$top"
echo "longest functions:"
awk '
    FNR == 1 { name = ""; start = 0 }
    /^[A-Za-z_].*\(/ && !/;[ \t]*$/ { cand = $0; candline = FNR }
    /^\{/ { if (cand != "") { name = cand; start = FNR - (FNR - candline) } }
    /^\}/ && name != "" {
        sub(/\(.*/, "", name); n = split(name, w, /[ *]+/)
        printf "%d %s:%d %s\n", FNR - start + 1, FILENAME, start, w[n]
        name = ""; cand = ""
    }
' $(echo "$files" | grep '\.c$') | sort -rn > /tmp/func-sizes.$$
head -n "$top" /tmp/func-sizes.$$
over_f=$(wc -l $files | grep -v ' total$' | awk '$1 > 1000')
over_fn=$(awk '$1 > 150' /tmp/func-sizes.$$)
rm -f /tmp/func-sizes.$$
if [ -n "$over_f$over_fn" ]; then
    echo "over the limits:"
    [ -n "$over_f" ] && echo "$over_f"
    [ -n "$over_fn" ] && echo "$over_fn"
    status=1
else
    echo "none over 1,000 lines a file or 150 lines a function"
fi
exit $status
