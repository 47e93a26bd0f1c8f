package attach

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/multinet/multinet/internal/cniapi"
	"github.com/multinet/multinet/internal/plan"
)

func TestPodFromArgs(t *testing.T) {
	cases := []struct {
		args    string
		want    plan.Pod
		wantErr string
	}{
		{"", plan.Pod{}, ""},
		{"IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;K8S_POD_UID=u;K8S_POD_INFRA_CONTAINER_ID=c",
			plan.Pod{Namespace: "ns", Name: "p", UID: "u"}, ""},
		{"K8S_POD_NAMESPACE=ns;;K8S_POD_NAME=p;", plan.Pod{Namespace: "ns", Name: "p"}, ""},
		{"K8S_POD_NAME=p", plan.Pod{}, "go together"},
		{"garbage", plan.Pod{}, "not KEY=VALUE"},
	}
	for _, c := range cases {
		got, err := podFromArgs(c.args)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("podFromArgs(%q) error %v, want %q", c.args, err, c.wantErr)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("podFromArgs(%q) = %+v, %v; want %+v", c.args, got, err, c.want)
		}
	}
}

func TestDecodeChecksWhatEachVerbNeeds(t *testing.T) {
	cases := []struct {
		req  cniapi.Request
		want string
	}{
		{cniapi.Request{Command: "ADD", ContainerID: "c", IfName: "eth0"}, "CNI_NETNS is required"},
		{cniapi.Request{Command: "DEL", IfName: "eth0"}, "CNI_CONTAINERID is required"},
		{cniapi.Request{Command: "DEL", ContainerID: "c", IfName: "eth0"}, ""}, // DEL without netns: the netns is gone
		{cniapi.Request{Command: "GC"}, ""},
		{cniapi.Request{Command: "ADD", ContainerID: "c", Netns: "/n", IfName: "eth0", Config: []byte("[")}, "stdin"},
	}
	for _, c := range cases {
		_, err := decode(&c.req)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("decode(%+v): %v", c.req, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("decode(%+v) = %v, want %q", c.req, err, c.want)
		}
	}
}

func TestToCNIKeepsCodesByType(t *testing.T) {
	delegateErr := &types.Error{Code: 7, Msg: "bad config from macvlan"}
	cases := []struct {
		err  error
		code uint
	}{
		{invalidf(types.ErrInvalidNetworkConfig, "bad"), types.ErrInvalidNetworkConfig},
		{fmt.Errorf("pod x: %w: %w", ErrTryAgain, errors.New("apiserver down")), types.ErrTryAgainLater},
		{fmt.Errorf("pod x: network y: %w", delegateErr), 7},
		{errors.New("disk full"), types.ErrInternal},
	}
	for _, c := range cases {
		got := ToCNI(c.err)
		if got.Code != c.code || got.Msg != c.err.Error() {
			t.Errorf("ToCNI(%v) = %+v, want code %d and the whole message", c.err, got, c.code)
		}
	}
}
