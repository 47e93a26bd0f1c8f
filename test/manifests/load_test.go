package manifests

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// deployDir is deploy/ seen from this package's directory, where go test runs.
var deployDir = filepath.Join("..", "..", "deploy")

// kustomization is the part of kustomization.yaml this test understands. It is decoded
// strictly: a field added to the kustomization (images, patches, a namespace transformer)
// fails the test until the test applies it too, so what is tested stays what
// `kubectl apply -k deploy/` installs.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Resources  []string `json:"resources"`
}

// loadDeploy returns the objects of every file in deploy/kustomization.yaml's resources, in
// order.
func loadDeploy(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(deployDir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k kustomization
	if err := yaml.UnmarshalStrict(data, &k); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	if len(k.Resources) == 0 {
		t.Fatal("kustomization.yaml lists no resources")
	}
	var objs []*unstructured.Unstructured
	for _, res := range k.Resources {
		got, err := loadFile(filepath.Join(deployDir, res))
		if err != nil {
			t.Fatalf("resource %s: %v", res, err)
		}
		objs = append(objs, got...)
	}
	return objs
}

// loadFile decodes every YAML document of a file; documents holding only comments are
// skipped, as kubectl does.
func loadFile(path string) ([]*unstructured.Unstructured, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return decodeAll(data)
}

// decodeAll decodes a multi-document YAML stream, empty documents left out.
func decodeAll(data []byte) ([]*unstructured.Unstructured, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var objs []*unstructured.Unstructured
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, err
		}
		obj, err := decodeDoc(doc)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", len(objs)+1, err)
		}
		if obj != nil {
			objs = append(objs, obj)
		}
	}
}

// decodeDoc decodes one YAML document; nil, nil for an empty one.
func decodeDoc(doc []byte) (*unstructured.Unstructured, error) {
	var m map[string]any
	if err := yaml.Unmarshal(doc, &m); err != nil {
		return nil, err
	}
	if len(m) == 0 {
		return nil, nil
	}
	obj := &unstructured.Unstructured{Object: m}
	if obj.GetKind() == "" || obj.GetAPIVersion() == "" || obj.GetName() == "" {
		return nil, errors.New("kind, apiVersion and metadata.name are required")
	}
	return obj, nil
}

// find returns the only object of kind, failing the test unless there is exactly one.
func find(t *testing.T, objs []*unstructured.Unstructured, kind string) *unstructured.Unstructured {
	t.Helper()
	var found []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		t.Fatalf("deploy/ has %d objects of kind %s, want 1", len(found), kind)
	}
	return found[0]
}

// typed converts obj into out (a *appsv1.DaemonSet, a *corev1.ConfigMap, ...).
func typed(t *testing.T, obj *unstructured.Unstructured, out any) {
	t.Helper()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, out); err != nil {
		t.Fatalf("%s %s: %v", obj.GetKind(), obj.GetName(), err)
	}
}

// daemonSet and configMap return deploy/'s DaemonSet and ConfigMap.
func daemonSet(t *testing.T, objs []*unstructured.Unstructured) *appsv1.DaemonSet {
	t.Helper()
	var ds appsv1.DaemonSet
	typed(t, find(t, objs, "DaemonSet"), &ds)
	return &ds
}

func configMap(t *testing.T, objs []*unstructured.Unstructured) *corev1.ConfigMap {
	t.Helper()
	var cm corev1.ConfigMap
	typed(t, find(t, objs, "ConfigMap"), &cm)
	return &cm
}
