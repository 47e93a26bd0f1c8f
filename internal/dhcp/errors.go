package dhcp

import (
	"github.com/containernetworking/cni/pkg/types"

	"github.com/multinet/multinet/internal/cniapi"
)

// cniError gives err a CNI error code; the message is err's whole chain.
var cniError = cniapi.Coded

// ToCNI maps any error of the manager to the CNI error the plugin returns.
func ToCNI(err error) *types.Error {
	if err == nil {
		return nil
	}
	if code, ok := cniapi.CodeOf(err); ok {
		return &types.Error{Code: code, Msg: err.Error()}
	}
	return &types.Error{Code: types.ErrInternal, Msg: err.Error()}
}
