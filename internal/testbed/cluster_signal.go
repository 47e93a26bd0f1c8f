package testbed

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// cleanupOnInterrupt makes Ctrl-C (SIGINT) or SIGTERM during a cluster's life leave the host
// as it was: the test binary's children (kubelet, containerd, the control plane) are killed,
// then what the node left (pods, shims, mounts, links, sysctls, fixed paths) is removed as
// for a cluster whose test binary died, and the binary exits. The returned func stops it.
func cleanupOnInterrupt(root string) (stop func()) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-sigs:
			fmt.Fprintf(os.Stderr, "\n%v: stopping the test bed's node and restoring the host...\n", sig)
			killChildren()
			if err := cleanStaleCluster(root); err != nil {
				fmt.Fprintf(os.Stderr, "testbed: cleaning up: %v\n", err)
				os.Exit(1)
			}
			fmt.Fprintln(os.Stderr, "testbed: host restored")
			os.Exit(130)
		case <-done:
		}
	}()
	return func() {
		signal.Stop(sigs)
		close(done)
	}
}

// killChildren SIGKILLs the direct children of this process.
func killChildren() {
	self := os.Getpid()
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
		rest := string(stat)
		if i := strings.LastIndexByte(rest, ')'); i >= 0 {
			rest = rest[i+1:]
		}
		f := strings.Fields(rest)
		if len(f) > 1 && f[1] == strconv.Itoa(self) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}
