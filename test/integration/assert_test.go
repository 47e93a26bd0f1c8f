package integration

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
)

// links lists the interface names in a netns, lo excluded, sorted.
func links(t testing.TB, netns ns.NetNS) []string {
	t.Helper()
	var names []string
	err := netns.Do(func(ns.NetNS) error {
		ls, err := netlinksafe.LinkList()
		if err != nil {
			return err
		}
		for _, l := range ls {
			if n := l.Attrs().Name; n != "lo" {
				names = append(names, n)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	return names
}

// ipv4 returns the first IPv4 address on ifname inside netns.
func ipv4(t testing.TB, netns ns.NetNS, ifname string) net.IP {
	t.Helper()
	var ip net.IP
	err := netns.Do(func(ns.NetNS) error {
		l, err := netlinksafe.LinkByName(ifname)
		if err != nil {
			return err
		}
		addrs, err := netlinksafe.AddrList(l, 2 /* AF_INET */)
		if err != nil || len(addrs) == 0 {
			return fmt.Errorf("no IPv4 address on %s: %v", ifname, err)
		}
		ip = addrs[0].IP
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ip
}

// ping sends real ICMP echo requests from inside netns.
func ping(t testing.TB, netns ns.NetNS, dst net.IP) error {
	t.Helper()
	out, err := exec.Command("nsenter", "--net="+netns.Path(), "ping", "-c", "1", "-W", "2", dst.String()).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ping %s from %s: %v\n%s", dst, netns.Path(), err, out)
	}
	return nil
}

// allocations lists host-local's reserved addresses under dir (all networks).
func allocations(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	_ = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return nil
		}
		base := filepath.Base(p)
		if base == "lock" || strings.HasPrefix(base, "last_reserved_ip") {
			return nil
		}
		out = append(out, strings.TrimPrefix(p, dir+"/"))
		return nil
	})
	return out
}

// networkStatus waits for the pod's network-status annotation and decodes it.
func (n *node) networkStatus(t testing.TB, sb *sandbox, wantEntries int) []nadv1.NetworkStatus {
	t.Helper()
	var last string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		pod, err := n.cp.Client.CoreV1().Pods(sb.pod.Namespace).Get(ctx(t), sb.pod.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		last = pod.Annotations["k8s.v1.cni.cncf.io/network-status"]
		var st []nadv1.NetworkStatus
		if last != "" && json.Unmarshal([]byte(last), &st) == nil && len(st) == wantEntries {
			return st
		}
	}
	t.Fatalf("network-status of %s/%s never had %d entries; last %q\n%s", sb.pod.Namespace, sb.pod.Name, wantEntries, last, n.log())
	return nil
}

// events waits for an Event with reason on the pod and returns the pod's events.
func (n *node) waitEvent(t testing.TB, pod *corev1.Pod, reason string) []corev1.Event {
	t.Helper()
	sel := fields.Set{"involvedObject.name": pod.Name, "involvedObject.uid": string(pod.UID)}.AsSelector().String()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		evs, err := n.cp.Client.CoreV1().Events(pod.Namespace).List(ctx(t), metav1.ListOptions{FieldSelector: sel})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs.Items {
			if e.Reason == reason {
				return evs.Items
			}
		}
	}
	t.Fatalf("no %s Event on pod %s/%s", reason, pod.Namespace, pod.Name)
	return nil
}

// checkpoints lists the records in the daemon's state dir.
func (n *node) checkpoints(t testing.TB) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(n.stateDir, "checkpoints"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// hostLinks lists host links whose name starts with prefix.
func hostLinks(t testing.TB, prefix string) []string {
	t.Helper()
	ls, err := netlinksafe.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range ls {
		if strings.HasPrefix(l.Attrs().Name, prefix) {
			out = append(out, l.Attrs().Name)
		}
	}
	return out
}

// vethsOn counts the host-side veths enslaved to bridge.
func vethsOn(t testing.TB, bridge string) int {
	t.Helper()
	br, err := netlinksafe.LinkByName(bridge)
	if err != nil {
		return 0
	}
	ls, err := netlinksafe.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	count := 0
	for _, l := range ls {
		if l.Attrs().MasterIndex == br.Attrs().Index && l.Type() == "veth" {
			count++
		}
	}
	return count
}
