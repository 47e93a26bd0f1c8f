package integration

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/multinet/multinet/internal/testbed"
)

// testStartWithAPIServerDown restarts multinetd while the API server is down (a node reboot
// during a control plane outage): the daemon serves DEL at once from its checkpoints, answers
// ADD "try again later" saying why, and becomes ready (conflist written) only once its caches
// fill after the API server is back.
func testStartWithAPIServerDown(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	e.threeNetworks(t)
	sb := e.attached(t, "p")
	later := e.NewSandbox(t, e.ns, "q", map[string]string{networks: "blue"})
	list := e.Conflist(t)
	conflist := filepath.Join(e.ConfDir, "00-multinet.conflist")

	e.Stop()
	// Removed, so that the test sees when the restarted daemon declares itself ready.
	if err := os.Remove(conflist); err != nil {
		t.Fatal(err)
	}
	cp.StopAPIServer(t)
	apiDown := true
	t.Cleanup(func() {
		if apiDown {
			cp.StartAPIServer(t)
		}
	})
	e.StartServing(t)

	if err := e.Runtime.DelNetworkList(testbed.Ctx(t), list, e.RuntimeConf(sb)); err != nil {
		t.Fatalf("DEL from a daemon started with the API server down: %v\n%s", err, e.Log())
	}
	e.assertClean(t)
	_, err := e.Runtime.AddNetworkList(testbed.Ctx(t), list, e.RuntimeConf(later))
	var cniErr *types.Error
	if !errors.As(err, &cniErr) || cniErr.Code != types.ErrTryAgainLater ||
		!strings.Contains(cniErr.Msg, "not synced") || !strings.Contains(cniErr.Msg, "API server is not reachable") {
		t.Fatalf("ADD before the caches synced = %#v, want CNI error 11 saying the caches are not synced and the API server is not reachable", err)
	}
	e.assertClean(t)
	if _, err := os.Stat(conflist); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("conflist written by a daemon whose caches are not synced (stat: %v)", err)
	}

	cp.StartAPIServer(t)
	apiDown = false
	waitForFile(t, e, conflist, time.Minute)
	e.MustAdd(t, later)
	if got := testbed.Links(t, later.Netns); len(got) != 2 {
		t.Fatalf("pod interfaces after the caches synced: %v, want eth0 and net1", got)
	}
	e.MustDel(t, later)
	e.assertClean(t)
}

// waitForFile waits until multinetd writes path (it does once ready).
func waitForFile(t *testing.T, e *env, path string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not written %s after the API server came back:\n%s", path, limit, e.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
