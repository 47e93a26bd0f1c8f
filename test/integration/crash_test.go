package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/multinet/multinet/internal/checkpoint"
	"github.com/multinet/multinet/internal/testbed"
)

// slowPlugin installs a plugin type "slow" that leaves a marker when it starts, waits, runs
// bridge, then leaves another: a delegate call long enough to kill the daemon in the middle
// of it.
func (e *env) slowPlugin(t *testing.T) (started, done string) {
	t.Helper()
	started, done = filepath.Join(e.Dir, "slow-started"), filepath.Join(e.Dir, "slow-done")
	e.scriptPlugin(t, "slow", fmt.Sprintf("touch %s\nsleep 1.5\n%s \"$@\"\nrc=$?\ntouch %s\nexit $rc\n",
		started, e.bridgeBin(), done))
	e.scriptNAD(t, "slow", "slow", "mns"+e.ID, "10.10.7.0/24")
	return started, done
}

// waitIntent waits until the checkpoint of sb records intent (not a result) for network.
func (e *env) waitIntent(t *testing.T, sb *testbed.Sandbox, network string) {
	t.Helper()
	path := filepath.Join(e.StateDir, "checkpoints", sb.ID+".json")
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		data, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		var rec checkpoint.Sandbox
		if json.Unmarshal(data, &rec) != nil {
			continue
		}
		for _, a := range rec.Attachments {
			if a.Network == e.ns+"/"+network && a.State == checkpoint.Adding {
				return
			}
		}
	}
	t.Fatalf("no intent for %s recorded in %s\n%s", network, path, e.Log())
}

// crashDuringAdd starts an ADD, kills the daemon (kill) once the slow delegate's intent is
// recorded and the delegate has started, and returns the ADD's error.
func (e *env) crashDuringAdd(t *testing.T, sb *testbed.Sandbox, started string, kill func()) error {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		_, err := e.Runtime.AddNetworkList(testbed.Ctx(t), e.Conflist(t), e.RuntimeConf(sb))
		errc <- err
	}()
	e.waitIntent(t, sb, "slow")
	waitFile(t, started)
	kill()
	return <-errc
}

func waitFile(t *testing.T, path string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(path); err == nil {
			return
		}
	}
	t.Fatalf("%s never appeared", path)
}

// testKill9 kills multinetd before, during and after a delegate call, restarts it, and
// checks that the runtime's DEL (which follows a failed ADD) leaves nothing behind.
func testKill9(t *testing.T, cp *testbed.ControlPlane) {
	cases := []struct {
		name        string
		annotation  string
		killGroup   bool // the delegate dies with the daemon: "before" it did anything
		waitForSlow bool // the delegate outlives the daemon and completes: "during"
	}{
		{"BeforeDelegateRuns", "slow", true, false},
		{"DuringDelegateCall", "slow", false, true},
		{"AfterFirstDelegateCompleted", "blue,slow", true, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, cp)
			e.threeNetworks(t)
			started, done := e.slowPlugin(t)
			sb := e.NewSandbox(t, e.ns, "p", map[string]string{networks: c.annotation})
			kill := e.Kill9
			if c.killGroup {
				kill = e.KillGroup9
			}
			if err := e.crashDuringAdd(t, sb, started, kill); err == nil {
				t.Fatal("ADD succeeded although multinetd was killed during it")
			}
			if c.waitForSlow {
				waitFile(t, done)
				if len(testbed.Allocations(t, e.IPAMDir)) == 0 {
					t.Fatal("the orphaned delegate should have allocated addresses")
				}
			}
			e.Start(t)
			e.MustDel(t, sb)
			e.assertClean(t)
			if n := testbed.VethsOn(t, "mns"+e.ID); n != 0 {
				t.Errorf("%d veths left on the slow network's bridge", n)
			}
		})
	}
}

// testGCRemovesSandboxesTheRuntimeForgot: the runtime lost its own state (no DEL will come);
// its CNI GC with the valid attachments removes the rest.
func testGCRemovesForgottenSandboxes(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	e.threeNetworks(t)
	keep := e.NewSandbox(t, e.ns, "keep", map[string]string{networks: "blue"})
	lost := e.NewSandbox(t, e.ns, "lost", map[string]string{networks: "blue,green"})
	e.MustAdd(t, keep)
	e.MustAdd(t, lost)
	forgetful := libcni.NewCNIConfigWithCacheDir([]string{e.BinDir}, t.TempDir(), nil)
	valid := []types.GCAttachment{{ContainerID: keep.ID, IfName: "eth0"}}
	gc := func() {
		if err := forgetful.GCNetworkList(testbed.Ctx(t), e.Conflist(t), &libcni.GCArgs{ValidAttachments: valid}); err != nil {
			t.Fatalf("GC: %v\n%s", err, e.Log())
		}
	}
	gc() // a record this fresh may belong to an ADD the runtime had not listed yet: spared
	if got := e.Checkpoints(t); len(got) != 2 {
		t.Fatalf("checkpoints after GC within the grace period: %v, want both", got)
	}
	old := time.Now().Add(-2 * time.Minute)
	if err := os.Chtimes(filepath.Join(e.StateDir, "checkpoints", lost.ID+".json"), old, old); err != nil {
		t.Fatal(err)
	}
	gc()
	if got := e.Checkpoints(t); len(got) != 1 || got[0] != keep.ID+".json" {
		t.Fatalf("checkpoints after GC: %v, want only %s", got, keep.ID)
	}
	if got := testbed.Allocations(t, e.IPAMDir); len(got) != 2 {
		t.Fatalf("allocations after GC: %v, want the kept pod's 2", got)
	}
	if got := testbed.Links(t, keep.Netns); len(got) != 2 {
		t.Fatalf("kept pod's interfaces after GC: %v", got)
	}
	e.MustDel(t, keep)
	e.assertClean(t)
}

// testSweepRemovesSandboxesWhoseNetnsIsGone: the netns vanished and no DEL came.
func testSweep(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	e.Stop()
	e.Start(t, "--sweep-interval", "200ms")
	e.threeNetworks(t)
	sb := e.NewSandbox(t, e.ns, "p", map[string]string{networks: "blue"})
	e.MustAdd(t, sb)
	removeNetns(t, sb)
	for deadline := time.Now().Add(20 * time.Second); len(e.Checkpoints(t)) > 0; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("sweep did not remove the record of a sandbox whose netns is gone\n%s", e.Log())
		}
	}
	e.assertClean(t)
}
