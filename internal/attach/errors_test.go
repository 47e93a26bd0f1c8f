package attach

import (
	"errors"
	"fmt"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/multinet/multinet/internal/checkpoint"
)

// TestPermanent: only an attachment whose ADD never completed may be given up, and only when
// the plugin itself refused the recorded call in a way a retry repeats.
func TestPermanent(t *testing.T) {
	addErr := &types.Error{Code: 999, Msg: "invalid IP address not-an-ip"}
	wrap := func(e error) error { return fmt.Errorf("network %q (net1): DEL: %w", "ns/a", e) }
	cases := []struct {
		name  string
		state checkpoint.State
		added *types.Error
		err   error
		want  bool
	}{
		{"incompatible version", checkpoint.Adding, nil, &types.Error{Code: types.ErrIncompatibleCNIVersion, Msg: "incompatible CNI versions"}, true},
		{"invalid network config", checkpoint.Adding, nil, &types.Error{Code: types.ErrInvalidNetworkConfig}, true},
		{"invalid env vars", checkpoint.Adding, nil, &types.Error{Code: types.ErrInvalidEnvironmentVariables}, true},
		{"same error as the ADD", checkpoint.Adding, addErr, &types.Error{Code: 999, Msg: addErr.Msg}, true},
		{"another internal error", checkpoint.Adding, addErr, &types.Error{Code: 999, Msg: "disk full"}, false},
		{"internal error, no ADD error", checkpoint.Adding, nil, &types.Error{Code: 999, Msg: "x"}, false},
		{"try again later", checkpoint.Adding, nil, &types.Error{Code: types.ErrTryAgainLater}, false},
		{"binary not found (not the plugin's word)", checkpoint.Adding, nil, errors.New(`failed to find plugin "macvlan" in path`), false},
		{"ADD completed: never dropped", checkpoint.Added, nil, &types.Error{Code: types.ErrIncompatibleCNIVersion}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := &checkpoint.Attachment{State: c.state, AddError: c.added}
			if got := permanent(wrap(c.err), a); got != c.want {
				t.Errorf("permanent = %v, want %v", got, c.want)
			}
		})
	}
}
