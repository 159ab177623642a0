# Helpers the benches share; source it after defining die() and WORK.

# utime + stime of a process, in clock ticks (the fields after the ")" of the command name:
# utime is the 12th, stime the 13th).
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }

# Waits up to 30 s for a listener on 127.0.0.1:PORT; dies with the server log's tail.
wait_port() {
    for _ in $(seq 1 300); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    die "nothing listens on port $1: $(tail -3 "$WORK/serve.log" 2>/dev/null)"
}

# Raises the open-file limit to NEED (each viewer holds sockets), or dies.
raise_fd_limit() {
    if [ "$(ulimit -n)" -lt "$1" ]; then
        ulimit -n "$1" 2>/dev/null || die "ulimit -n is $(ulimit -n); $1 file descriptors are needed"
    fi
}
