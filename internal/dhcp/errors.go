package dhcp

import (
	"errors"

	"github.com/containernetworking/cni/pkg/types"
)

// cniError gives err a CNI error code; the message is err's whole chain.
func cniError(code uint, err error) error {
	return &codedError{code: code, err: err}
}

type codedError struct {
	code uint
	err  error
}

func (e *codedError) Error() string { return e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }

// ToCNI maps any error of the manager to the CNI error the plugin returns.
func ToCNI(err error) *types.Error {
	if err == nil {
		return nil
	}
	var ce *codedError
	if errors.As(err, &ce) {
		return &types.Error{Code: ce.code, Msg: err.Error()}
	}
	return &types.Error{Code: types.ErrInternal, Msg: err.Error()}
}
