package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// knownNADs exist; "broken/*" cannot be looked up.
type knownNADs map[string]bool

func (k knownNADs) Exists(_ context.Context, namespace, name string) (bool, error) {
	if namespace == "broken" {
		return false, errors.New("connection refused")
	}
	return k[namespace+"/"+name], nil
}

func podJSON(annotations map[string]string) runtime.RawExtension {
	b, _ := json.Marshal(map[string]any{"metadata": map[string]any{"generateName": "web-", "annotations": annotations}})
	return runtime.RawExtension{Raw: b}
}

func nadJSON(config string) runtime.RawExtension {
	b, _ := json.Marshal(map[string]any{"metadata": map[string]any{"name": "storage"}, "spec": map[string]any{"config": config}})
	return runtime.RawExtension{Raw: b}
}

// policyJSON is MultiNetworkPolicy p for networks forNets (no annotation when "-") with a
// spec and labels.
func policyJSON(forNets, spec string, labels map[string]string) runtime.RawExtension {
	meta := map[string]any{"name": "p", "labels": labels}
	if forNets != "-" {
		meta["annotations"] = map[string]string{"k8s.v1.cni.cncf.io/policy-for": forNets}
	}
	b, _ := json.Marshal(map[string]any{"metadata": meta, "spec": json.RawMessage(spec)})
	return runtime.RawExtension{Raw: b}
}

// TestReview: which requests are checked, and what an answer holds.
func TestReview(t *testing.T) {
	const nets = "k8s.v1.cni.cncf.io/networks"
	pods := metav1.GroupVersionResource{Version: "v1", Resource: "pods"}
	nads := metav1.GroupVersionResource{Group: "k8s.cni.cncf.io", Version: "v1", Resource: "network-attachment-definitions"}
	bad := map[string]string{nets: "a@this-name-is-too-long"}
	badConf := `{"type":"../x"}`
	v1beta1 := metav1.GroupVersionResource{Group: "k8s.cni.cncf.io", Version: "v1beta1", Resource: "multi-networkpolicies"}
	v1beta2 := metav1.GroupVersionResource{Group: "k8s.cni.cncf.io", Version: "v1beta2", Resource: "multi-networkpolicies"}
	goodPolicy := `{"podSelector":{},"ingress":[{"ports":[{"port":8000,"endPort":8080}]}]}`
	badPolicy := `{"podSelector":{},"ingress":[{"from":[{"ipBlock":{"cidr":"10.2.0.0/16","except":["10.1.0.0/16"]}}]}]}`
	h := &Handler{NADs: knownNADs{"team-a/storage": true}, Log: slog.New(slog.DiscardHandler)}
	for _, tc := range []struct {
		name        string
		req         admissionv1.AdmissionRequest
		wantAllowed bool
		wantWarn    []string // parts of each warning, in order
	}{
		{name: "pod without annotations", wantAllowed: true,
			req: admissionv1.AdmissionRequest{Resource: pods, Operation: admissionv1.Create, Object: podJSON(nil)}},
		{name: "pod with a bad annotation", wantAllowed: false,
			req: admissionv1.AdmissionRequest{Resource: pods, Operation: admissionv1.Create, Object: podJSON(bad)}},
		{name: "pod naming NADs: one missing, one not looked up", wantAllowed: true,
			wantWarn: []string{`Pod team-a/web-*: network "team-a/nope": NetworkAttachmentDefinition not found`, `network "broken/x": NetworkAttachmentDefinition not checked: connection refused`},
			req: admissionv1.AdmissionRequest{Resource: pods, Operation: admissionv1.Create,
				Object: podJSON(map[string]string{nets: "storage,nope,broken/x"})}},
		{name: "update leaving a bad annotation as it was", wantAllowed: true,
			req: admissionv1.AdmissionRequest{Resource: pods, Operation: admissionv1.Update, Object: podJSON(bad), OldObject: podJSON(bad)}},
		{name: "update to a bad annotation", wantAllowed: false,
			req: admissionv1.AdmissionRequest{Resource: pods, Operation: admissionv1.Update, Object: podJSON(bad), OldObject: podJSON(nil)}},
		{name: "pod subresource", wantAllowed: true,
			req: admissionv1.AdmissionRequest{Resource: pods, SubResource: "status", Operation: admissionv1.Update, Object: podJSON(bad)}},
		{name: "bad NAD", wantAllowed: false,
			req: admissionv1.AdmissionRequest{Resource: nads, Operation: admissionv1.Create, Object: nadJSON(badConf)}},
		{name: "NAD update leaving a bad config as it was", wantAllowed: true, wantWarn: []string{`type "../x"`},
			req: admissionv1.AdmissionRequest{Resource: nads, Operation: admissionv1.Update, Object: nadJSON(badConf), OldObject: nadJSON(badConf)}},
		{name: "NAD delete", wantAllowed: true,
			req: admissionv1.AdmissionRequest{Resource: nads, Operation: admissionv1.Delete, OldObject: nadJSON(badConf)}},
		{name: "good v1beta2 policy", wantAllowed: true,
			req: admissionv1.AdmissionRequest{Resource: v1beta2, Operation: admissionv1.Create, Object: policyJSON("storage", goodPolicy, nil)}},
		{name: "bad v1beta1 policy", wantAllowed: false,
			req: admissionv1.AdmissionRequest{Resource: v1beta1, Operation: admissionv1.Create, Object: policyJSON("storage", badPolicy, nil)}},
		{name: "policy naming NADs: one missing, one not looked up", wantAllowed: true,
			wantWarn: []string{`MultiNetworkPolicy team-a/p: network "broken/x": NetworkAttachmentDefinition not checked: connection refused`,
				`MultiNetworkPolicy team-a/p: network "team-a/nope": NetworkAttachmentDefinition not found: the policy selects no interface on it until it exists`},
			req: admissionv1.AdmissionRequest{Resource: v1beta1, Operation: admissionv1.Create, Object: policyJSON("storage,nope,broken/x", goodPolicy, nil)}},
		{name: "policy for no network", wantAllowed: true, wantWarn: []string{"policy-for is missing: the policy applies to no network"},
			req: admissionv1.AdmissionRequest{Resource: v1beta2, Operation: admissionv1.Create, Object: policyJSON("-", goodPolicy, nil)}},
		{name: "policy update leaving a bad spec as it was", wantAllowed: true, wantWarn: []string{`is not inside cidr "10.2.0.0/16"`},
			req: admissionv1.AdmissionRequest{Resource: v1beta2, Operation: admissionv1.Update,
				Object: policyJSON("storage", badPolicy, map[string]string{"a": "b"}), OldObject: policyJSON("storage", badPolicy, nil)}},
		{name: "policy update to a bad spec", wantAllowed: false,
			req: admissionv1.AdmissionRequest{Resource: v1beta2, Operation: admissionv1.Update, Object: policyJSON("storage", badPolicy, nil), OldObject: policyJSON("storage", goodPolicy, nil)}},
		{name: "policy update to a bad policy-for", wantAllowed: false,
			req: admissionv1.AdmissionRequest{Resource: v1beta2, Operation: admissionv1.Update, Object: policyJSON("a/b/c", badPolicy, nil), OldObject: policyJSON("storage", badPolicy, nil)}},
		{name: "policy not an object", wantAllowed: false,
			req: admissionv1.AdmissionRequest{Resource: v1beta2, Operation: admissionv1.Create, Name: "p", Object: runtime.RawExtension{Raw: []byte(`[]`)}}},
		{name: "another resource", wantAllowed: true,
			req: admissionv1.AdmissionRequest{Resource: metav1.GroupVersionResource{Version: "v1", Resource: "configmaps"}, Operation: admissionv1.Create}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.Namespace = "team-a"
			resp := h.Review(t.Context(), &tc.req)
			if resp.Allowed != tc.wantAllowed {
				t.Fatalf("allowed %v, want %v (%+v)", resp.Allowed, tc.wantAllowed, resp.Result)
			}
			if !resp.Allowed && (resp.Result == nil || !strings.HasPrefix(resp.Result.Message, "Pod team-a/web-*: ") &&
				!strings.HasPrefix(resp.Result.Message, "NetworkAttachmentDefinition team-a/storage: ") &&
				!strings.HasPrefix(resp.Result.Message, "MultiNetworkPolicy team-a/p: ")) {
				t.Errorf("refusal %+v does not name the object", resp.Result)
			}
			if len(resp.Warnings) != len(tc.wantWarn) {
				t.Fatalf("warnings %q, want %d", resp.Warnings, len(tc.wantWarn))
			}
			for i, w := range tc.wantWarn {
				if !strings.Contains(resp.Warnings[i], w) {
					t.Errorf("warning %q, want it to hold %q", resp.Warnings[i], w)
				}
			}
		})
	}
}

// TestServeHTTP: the answer is an AdmissionReview of the same version, with the request's UID.
func TestServeHTTP(t *testing.T) {
	h := &Handler{NADs: knownNADs{}, Log: slog.New(slog.DiscardHandler)}
	review := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{UID: "u-1", Namespace: "team-a", Operation: admissionv1.Create,
			Resource: metav1.GroupVersionResource{Group: "k8s.cni.cncf.io", Version: "v1", Resource: "network-attachment-definitions"},
			Object:   nadJSON(`{"plugins":[{"type":"bridge"},{"type":"../x"}]}`)},
	}
	body, _ := json.Marshal(review)
	for _, tc := range []struct {
		name, method, contentType string
		body                      []byte
		wantCode                  int
	}{
		{name: "review", method: http.MethodPost, contentType: "application/json", body: body, wantCode: http.StatusOK},
		{name: "GET", method: http.MethodGet, wantCode: http.StatusMethodNotAllowed},
		{name: "not JSON", method: http.MethodPost, contentType: "text/plain", body: body, wantCode: http.StatusUnsupportedMediaType},
		{name: "no request", method: http.MethodPost, contentType: "application/json", body: []byte(`{}`), wantCode: http.StatusBadRequest},
	} {
		req := httptest.NewRequest(tc.method, Path, bytes.NewReader(tc.body))
		req.Header.Set("Content-Type", tc.contentType)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.wantCode {
			t.Errorf("%s: status %d, want %d", tc.name, rec.Code, tc.wantCode)
		}
		if rec.Code != http.StatusOK {
			continue
		}
		var got admissionv1.AdmissionReview
		data, _ := io.ReadAll(rec.Body)
		if err := json.Unmarshal(data, &got); err != nil || got.Response == nil {
			t.Fatalf("%s: answer %s: %v", tc.name, data, err)
		}
		want := `NetworkAttachmentDefinition team-a/storage: spec.config: plugin 2: type "../x": must be a plain binary name, not a path`
		if got.APIVersion != "admission.k8s.io/v1" || got.Kind != "AdmissionReview" || got.Response.UID != "u-1" ||
			got.Response.Allowed || got.Response.Result.Message != want || got.Request != nil {
			t.Errorf("%s: answer %s", tc.name, data)
		}
	}
}

// BenchmarkReviewPodWithoutNetworks is the cost of the common case, a pod without network
// annotations: every pod create and update outside the exempt namespaces pays it.
func BenchmarkReviewPodWithoutNetworks(b *testing.B) {
	raw, _ := json.Marshal(map[string]any{
		"metadata": map[string]any{"name": "web-0", "labels": map[string]string{"app": "web"},
			"annotations": map[string]string{"kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z"}},
		"spec": map[string]any{"containers": []map[string]any{{"name": "web", "image": "nginx",
			"env": []map[string]string{{"name": "A", "value": strings.Repeat("x", 200)}}}}},
	})
	h := &Handler{NADs: knownNADs{}, Log: slog.New(slog.DiscardHandler)}
	req := &admissionv1.AdmissionRequest{Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
		Operation: admissionv1.Create, Namespace: "team-a", Object: runtime.RawExtension{Raw: raw}}
	for b.Loop() {
		if !h.Review(b.Context(), req).Allowed {
			b.Fatal("refused")
		}
	}
}
