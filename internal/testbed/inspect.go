package testbed

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

// Links lists the interface names in a netns, lo excluded, sorted.
func Links(t testing.TB, netns ns.NetNS) []string {
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

// IPv4 returns the first IPv4 address on ifname inside netns.
func IPv4(t testing.TB, netns ns.NetNS, ifname string) net.IP {
	t.Helper()
	var ip net.IP
	err := netns.Do(func(ns.NetNS) error {
		l, err := netlinksafe.LinkByName(ifname)
		if err != nil {
			return err
		}
		addrs, err := netlinksafe.AddrList(l, 2 /* AF_INET */)
		if err != nil || len(addrs) == 0 {
			return fmt.Errorf("no IPv4 address on %s (%d found): %w", ifname, len(addrs), err)
		}
		ip = addrs[0].IP
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ip
}

// Ping sends real ICMP echo requests from inside netns.
func Ping(t testing.TB, netns ns.NetNS, dst net.IP) error {
	t.Helper()
	out, err := exec.Command("nsenter", "--net="+netns.Path(), "ping", "-c", "1", "-W", "2", dst.String()).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ping %s from %s: %w\n%s", dst, netns.Path(), err, out)
	}
	return nil
}

// Allocations lists host-local's reserved addresses under dir (all networks).
func Allocations(t testing.TB, dir string) []string {
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

// NetworkStatus waits for the pod's network-status annotation and decodes it.
func (n *Node) NetworkStatus(t testing.TB, sb *Sandbox, wantEntries int) []nadv1.NetworkStatus {
	t.Helper()
	var last string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		pod, err := n.CP.Client.CoreV1().Pods(sb.Pod.Namespace).Get(Ctx(t), sb.Pod.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		last = pod.Annotations["k8s.v1.cni.cncf.io/network-status"]
		var st []nadv1.NetworkStatus
		if last != "" && json.Unmarshal([]byte(last), &st) == nil && len(st) == wantEntries {
			return st
		}
	}
	t.Fatalf("network-status of %s/%s never had %d entries; last %q\n%s", sb.Pod.Namespace, sb.Pod.Name, wantEntries, last, n.Log())
	return nil
}

// WaitEvent waits for an Event with reason on the pod and returns the pod's events.
func (n *Node) WaitEvent(t testing.TB, pod *corev1.Pod, reason string) []corev1.Event {
	t.Helper()
	sel := fields.Set{"involvedObject.name": pod.Name, "involvedObject.uid": string(pod.UID)}.AsSelector().String()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		evs, err := n.CP.Client.CoreV1().Events(pod.Namespace).List(Ctx(t), metav1.ListOptions{FieldSelector: sel})
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

// Checkpoints lists the records in the daemon's state dir.
func (n *Node) Checkpoints(t testing.TB) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(n.StateDir, "checkpoints"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// HostLinks lists host links whose name starts with prefix.
func HostLinks(t testing.TB, prefix string) []string {
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

// VethsOn counts the host-side veths enslaved to bridge.
func VethsOn(t testing.TB, bridge string) int {
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
