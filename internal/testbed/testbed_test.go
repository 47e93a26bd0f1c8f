package testbed_test

import (
	"context"
	"encoding/base64"
	"net"
	"os"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/multinet/multinet/internal/testbed"
)

const networksAnnotation = "k8s.v1.cni.cncf.io/networks"

func TestObjectsSurviveAPIServerRestart(t *testing.T) {
	cp := testbed.StartControlPlane(t)
	cp.CreateNamespace(t, "net")
	cp.CreateNAD(t, "net", "storage", `{"cniVersion":"1.0.0","type":"macvlan"}`)
	pod := cp.CreatePod(t, "net", "web-0", "node-a", map[string]string{networksAnnotation: "storage"})
	if pod.UID == "" {
		t.Fatalf("created pod has no UID")
	}
	checkObjects(t, cp, pod.UID)

	cp.StopAPIServer(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if _, err := cp.Client.CoreV1().Pods("net").Get(ctx, "web-0", metav1.GetOptions{}); err == nil {
		t.Fatalf("get pod with kube-apiserver stopped: succeeded, want an error")
	}
	cp.StartAPIServer(t)
	checkObjects(t, cp, pod.UID)
}

func checkObjects(t *testing.T, cp *testbed.ControlPlane, uid types.UID) {
	t.Helper()
	ctx := t.Context()
	pod, err := cp.Client.CoreV1().Pods("net").Get(ctx, "web-0", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get pod: %v", err)
	}
	if pod.UID != uid || pod.Spec.NodeName != "node-a" || pod.Annotations[networksAnnotation] != "storage" {
		t.Errorf("pod read back: uid %s node %q annotations %v", pod.UID, pod.Spec.NodeName, pod.Annotations)
	}
	nad, err := cp.NADClient.K8sCniCncfIoV1().NetworkAttachmentDefinitions("net").Get(ctx, "storage", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get network-attachment-definition: %v", err)
	}
	if want := `{"cniVersion":"1.0.0","type":"macvlan"}`; nad.Spec.Config != want {
		t.Errorf("spec.config read back = %q, want %q", nad.Spec.Config, want)
	}
}

func TestKubeconfigReachesAPIServer(t *testing.T) {
	cp := testbed.StartControlPlane(t)
	client := clientFromKubeconfig(t, cp.Kubeconfig)
	if _, err := client.CoreV1().Namespaces().Get(t.Context(), "default", metav1.GetOptions{}); err != nil {
		t.Fatalf("get namespace default through the kubeconfig: %v", err)
	}
}

// clientFromKubeconfig reads the fields the testbed writes. (clientcmd would do it, but it
// needs github.com/spf13/pflag, which go.mod does not list.)
func clientFromKubeconfig(t *testing.T, path string) kubernetes.Interface {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var kc struct {
		Clusters []struct {
			Cluster struct {
				Server string `json:"server"`
				CA     string `json:"certificate-authority-data"`
			} `json:"cluster"`
		} `json:"clusters"`
		Users []struct {
			User struct {
				Token string `json:"token"`
			} `json:"user"`
		} `json:"users"`
	}
	if err := yaml.Unmarshal(data, &kc); err != nil || len(kc.Clusters) != 1 || len(kc.Users) != 1 {
		t.Fatalf("kubeconfig %s: %v\n%s", path, err, data)
	}
	ca, err := base64.StdEncoding.DecodeString(kc.Clusters[0].Cluster.CA)
	if err != nil {
		t.Fatalf("kubeconfig %s: certificate-authority-data: %v", path, err)
	}
	client, err := kubernetes.NewForConfig(&rest.Config{
		Host:            kc.Clusters[0].Cluster.Server,
		BearerToken:     kc.Users[0].User.Token,
		TLSClientConfig: rest.TLSClientConfig{CAData: ca},
	})
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	return client
}

func TestRBACDeniesUnboundUser(t *testing.T) {
	cp := testbed.StartControlPlane(t,
		testbed.WithRBAC(),
		testbed.WithToken("node-a-token", "system:node:node-a", "system:nodes"))
	client := clientFromKubeconfig(t, cp.KubeconfigFor(t, "node-a-token"))
	_, err := client.CoreV1().Secrets("default").List(t.Context(), metav1.ListOptions{})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("list secrets as system:node:node-a: err = %v, want forbidden", err)
	}
	if _, err := cp.Client.CoreV1().Secrets("default").List(t.Context(), metav1.ListOptions{}); err != nil {
		t.Fatalf("list secrets as admin: %v", err)
	}
}

func TestNewNetNSIsNotTheHostNetNS(t *testing.T) {
	testbed.RequireRoot(t)
	netns := testbed.NewNetNS(t)
	host, err := os.Stat("/proc/self/ns/net")
	if err != nil {
		t.Fatalf("stat host netns: %v", err)
	}
	pod, err := os.Stat(netns.Path())
	if err != nil {
		t.Fatalf("stat %s: %v", netns.Path(), err)
	}
	if os.SameFile(host, pod) {
		t.Fatalf("%s is the host network namespace", netns.Path())
	}
	err = netns.Do(func(ns.NetNS) error {
		ifaces, err := net.Interfaces()
		if err != nil {
			return err
		}
		if len(ifaces) != 1 || ifaces[0].Name != "lo" {
			t.Errorf("interfaces in a fresh netns = %v, want only lo", ifaces)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("entering %s: %v", netns.Path(), err)
	}
}
