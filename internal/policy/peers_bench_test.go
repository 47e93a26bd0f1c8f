package policy

import (
	"fmt"
	"os"
	"runtime"
	"testing"
	"text/tabwriter"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BenchmarkPeerCache prints what the cache of the pods of other nodes costs: the heap of
// 10,000 pods as it keeps them (a Deployment's pod with 4 labels, one secondary network,
// a named port), and the size of such a pod on the wire (protobuf), which every node
// decodes on each of its changes. docs/policy.md extrapolates from these to 100,000.
func BenchmarkPeerCache(b *testing.B) {
	const n = 10_000
	for range b.N {
		wire := sizeOnWire(b, samplePod(0))
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		cache := make([]any, n)
		for i := range n {
			obj, err := toPeer(samplePod(i))
			if err != nil {
				b.Fatal(err)
			}
			cache[i] = obj
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(cache)
		per := float64(after.HeapInuse-before.HeapInuse) / n
		tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "peer cache per pod\t%.0f B\t10k pods %.1f MiB\t100k pods %.0f MiB\n", per, per*1e4/(1<<20), per*1e5/(1<<20))
		fmt.Fprintf(tw, "pod on the wire (protobuf)\t%d B\t10k pods %.0f MiB\t100k pods %.0f MiB\n", wire,
			float64(wire)*1e4/(1<<20), float64(wire)*1e5/(1<<20))
		_ = tw.Flush()
	}
}

// samplePod is a typical running Deployment pod with one secondary network.
func samplePod(i int) *corev1.Pod {
	ip := fmt.Sprintf("10.%d.%d.%d", 80+i/65536, i/256%256, i%256)
	status := fmt.Sprintf(`[{"name":"cluster","interface":"eth0","ips":["10.244.%d.%d"],"default":true},`+
		`{"name":"ns%d/storage","interface":"net1","ips":[%q],"mac":"02:00:00:00:%02x:%02x"}]`, i/256%256, i%256, i%100, ip, i/256%256, i%256)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: fmt.Sprintf("web-7c9f8d6b5-%05d", i), Namespace: fmt.Sprintf("ns%d", i%100),
			UID: "0c1f6a4e-8d2b-4c3a-9f1e-7b6d5c4a3b2a", ResourceVersion: "123456789",
			Labels: map[string]string{"app": "web", "tier": "storage", "pod-template-hash": "7c9f8d6b5",
				"app.kubernetes.io/part-of": "shop"},
			Annotations: map[string]string{nadv1.NetworkAttachmentAnnot: "storage", nadv1.NetworkStatusAnnot: status},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet",
				Name: "web-7c9f8d6b5", UID: "1d2e3f40-5a6b-7c8d-9e0f-1a2b3c4d5e6f"}},
		},
		Spec: corev1.PodSpec{NodeName: fmt.Sprintf("node-%d", i%100), Containers: []corev1.Container{{
			Name: "web", Image: "registry.example/shop/web:1.4.2",
			Ports:     []corev1.ContainerPort{{Name: "iscsi", ContainerPort: 3260, Protocol: corev1.ProtocolTCP}},
			Resources: corev1.ResourceRequirements{}, TerminationMessagePath: "/dev/termination-log",
		}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.244.1.2", HostIP: "192.168.1.10",
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue},
				{Type: corev1.ContainersReady, Status: corev1.ConditionTrue},
				{Type: corev1.PodInitialized, Status: corev1.ConditionTrue},
				{Type: corev1.PodScheduled, Status: corev1.ConditionTrue}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "web", Ready: true,
				Image: "registry.example/shop/web:1.4.2", ImageID: "registry.example/shop/web@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
				ContainerID: "containerd://0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}}},
	}
}

// sizeOnWire is the protobuf size of pod.
func sizeOnWire(b *testing.B, pod *corev1.Pod) int {
	data, err := pod.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	return len(data)
}
