package testbed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"
)

var crdResource = schema.GroupVersionResource{
	Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions",
}

// installCRDs creates every CustomResourceDefinition in deploy/crds and waits until each
// is established, so that its resources can be used right away.
func installCRDs(ctx context.Context, config *rest.Config) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	dir := filepath.Join(root, "deploy", "crds")
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return fmt.Errorf("listing CRD manifests: %w", err)
	}
	if len(files) == 0 {
		return fmt.Errorf("no CRD manifests in %s", dir)
	}
	client, err := dynamic.NewForConfig(config)
	if err != nil {
		return fmt.Errorf("dynamic client: %w", err)
	}
	crds := client.Resource(crdResource)
	for _, file := range files {
		if err := installCRD(ctx, crds, file); err != nil {
			return err
		}
	}
	return nil
}

func installCRD(ctx context.Context, crds dynamic.NamespaceableResourceInterface, file string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("reading CRD: %w", err)
	}
	for _, doc := range bytes.Split(data, []byte("\n---")) {
		obj, err := decodeYAML(doc)
		if err != nil {
			return fmt.Errorf("CRD %s: %w", file, err)
		}
		if obj == nil {
			continue
		}
		if _, err := crds.Create(ctx, obj, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating CRD %s: %w", obj.GetName(), err)
		}
		if err := waitEstablished(ctx, crds, obj.GetName()); err != nil {
			return err
		}
	}
	return nil
}

// decodeYAML returns nil for a document holding only comments or nothing.
func decodeYAML(doc []byte) (*unstructured.Unstructured, error) {
	var content map[string]any
	if err := yaml.Unmarshal(doc, &content); err != nil {
		return nil, err
	}
	if len(content) == 0 {
		return nil, nil
	}
	return &unstructured.Unstructured{Object: content}, nil
}

// waitEstablished polls the CRD until its Established condition is True.
func waitEstablished(ctx context.Context, crds dynamic.NamespaceableResourceInterface, name string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		obj, err := crds.Get(ctx, name, metav1.GetOptions{})
		if err == nil && established(obj) {
			return nil
		}
		if err == nil {
			err = errors.New("condition Established is not True")
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("CRD %s not established: %w: %w", name, ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func established(crd *unstructured.Unstructured) bool {
	conditions, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	for _, c := range conditions {
		cond, ok := c.(map[string]any)
		if ok && cond["type"] == "Established" && cond["status"] == "True" {
			return true
		}
	}
	return false
}
