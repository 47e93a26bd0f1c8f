package demo

import (
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/multinet/multinet/internal/testbed"
)

// teardown is step 5: hot-delete a NAD in use, delete the pods, and prove nothing is left.
func (d *demo) teardown() {
	t := d.t
	d.step(5, "Hot-delete the telemetry network, then delete the pods (API delete, then CNI DEL)")
	show("Addresses allocated now (host-local, every network of the node):", list(testbed.Allocations(t, d.node.IPAMDir)))
	show("multinetd's checkpoint records (one per pod: what was attached, with the exact config used):",
		list(d.node.Checkpoints(t)))
	nads := d.cp.NADClient.K8sCniCncfIoV1().NetworkAttachmentDefinitions(namespace)
	if err := nads.Delete(testbed.Ctx(t), "telemetry", metav1.DeleteOptions{}); err != nil {
		t.Fatalf("cannot delete the NetworkAttachmentDefinition %s/telemetry: %v", namespace, err)
	}
	if _, err := nads.Get(testbed.Ctx(t), "telemetry", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the NetworkAttachmentDefinition %s/telemetry should be gone, Get returned %v", namespace, err)
	}
	say("Deleted NetworkAttachmentDefinition %s/telemetry while db and probe are still attached to it.", namespace)
	for _, p := range d.pods {
		d.deletePod(p)
	}
	d.checkClean()
}

// deletePod deletes the pod in the API, then runs CNI DEL as the runtime does when the sandbox goes.
func (d *demo) deletePod(p *pod) {
	t := d.t
	zero := int64(0)
	err := d.cp.Client.CoreV1().Pods(namespace).Delete(testbed.Ctx(t), p.name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	if err != nil {
		t.Fatalf("cannot delete pod %s/%s in the API: %v", namespace, p.name, err)
	}
	if err := d.node.Del(t, p.sb); err != nil {
		t.Fatalf("CNI DEL of pod %s failed: %v\nA failing DEL leaks addresses and makes the kubelet retry forever.\n"+
			"multinetd's log (last lines):\n%s", p.name, err, d.node.Log())
	}
	if left := testbed.Links(t, p.sb.Netns); len(left) != 0 {
		t.Fatalf("after CNI DEL, pod %s's network namespace still has interfaces %v", p.name, left)
	}
	note := ""
	if _, ok := p.ips["telemetry"]; ok {
		note = " although its telemetry NAD is gone (multinet used its checkpoint)"
	}
	say("pod %-5s deleted in the API; CNI DEL OK%s; interfaces left in its netns: none", p.name, note)
}

// checkClean proves the node is back to empty: addresses, records and veths.
func (d *demo) checkClean() {
	t := d.t
	allocs := testbed.Allocations(t, d.node.IPAMDir)
	show("Addresses still allocated:", list(allocs))
	if len(allocs) != 0 {
		t.Fatalf("addresses are still allocated after every pod's DEL (an IP leak): %v", allocs)
	}
	records := d.node.Checkpoints(t)
	show("Checkpoint records left:", list(records))
	if len(records) != 0 {
		t.Fatalf("checkpoint records are left after every pod's DEL: %v", records)
	}
	for _, br := range []string{d.clusterBridge(), d.storageBridge()} {
		n := testbed.VethsOn(t, br)
		say("veths left on bridge %s: %d", br, n)
		if n != 0 {
			t.Fatalf("%d veths are still plugged into bridge %s after every pod's DEL", n, br)
		}
	}
}

// list formats names one a line, or "(none)".
func list(items []string) string {
	if len(items) == 0 {
		return "(none)"
	}
	return strings.Join(items, "\n")
}
