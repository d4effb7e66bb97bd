echo "script ran with: $*"
