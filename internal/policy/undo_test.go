package policy

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/multinet/multinet/internal/checkpoint"
	"github.com/multinet/multinet/internal/policy/compile"
)

// TestFailedEnforceLeavesNoPeer: an ADD (or plug) whose rules cannot be programmed is undone
// by its caller, so the controller forgets what that Enforce recorded: the address the
// sandbox had is not kept among the peers other pods allow (it is free again, soon another
// pod's), and the sandbox is not retried.
func TestFailedEnforceLeavesNoPeer(t *testing.T) {
	f := &tables{rules: map[string][]compile.Ruleset{}, calls: map[string]int{}}
	pods := labelled{"a/web": {"app": "web"}}
	c := testController(t, f, pods)
	c.onPolicy(nil, mnp("a", "web", "blue", map[string]string{"app": "web"}, fromPods(map[string]string{"role": "client"})))
	c.onPolicy(nil, mnp("a", "clients", "blue", map[string]string{"role": "client"}))
	settle(t, c, f)
	pods["a/x"], pods["a/y"] = map[string]string{"role": "client"}, map[string]string{"role": "client"}

	f.mu.Lock()
	f.fail = errors.New("netlink: operation not permitted")
	f.mu.Unlock()
	if err := c.Enforce(context.Background(), client("x", 77)); err == nil {
		t.Fatal("Enforce succeeded with the firewall failing")
	}
	f.mu.Lock()
	f.fail = nil
	f.mu.Unlock()
	c.mu.Lock()
	_, kept := c.st.sandboxes["x"]
	c.mu.Unlock()
	if kept {
		t.Error("the sandbox whose Enforce failed is still known")
	}

	// y's arrival reprograms web from everything known then.
	if err := c.Enforce(context.Background(), client("y", 78)); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); !allows(f, "web", "10.1.0.78"); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("web never allowed the client y: %+v", f.rules["web"])
		}
	}
	if allows(f, "web", "10.1.0.77") {
		t.Errorf("web allows 10.1.0.77, the address of the sandbox whose ADD failed: %+v", f.rules["web"])
	}
}

// client is the record of a sandbox of pod a/name with address 10.1.0.host on a/blue.
func client(name string, host int) *checkpoint.Sandbox {
	return &checkpoint.Sandbox{ContainerID: name, Netns: name, PodNamespace: "a", PodName: name, PodUID: name,
		Attachments: []checkpoint.Attachment{{Network: "a/blue", IfName: "net1", State: checkpoint.Added,
			Result: fmt.Appendf(nil, `{"cniVersion":"1.0.0","ips":[{"address":"10.1.0.%d/24"}]}`, host)}}}
}

// allows tells whether the rules last programmed in netns let addr in.
func allows(f *tables, netns, addr string) bool {
	a := netip.MustParseAddr(addr)
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, rs := range f.rules[netns] {
		if rs.Ingress == nil {
			continue
		}
		for _, al := range rs.Ingress.Allow {
			for _, p := range al.Addrs {
				if p.Contains(a) {
					return true
				}
			}
		}
	}
	return false
}
