package attach

import (
	"errors"
	"fmt"

	"github.com/containernetworking/cni/pkg/types"
)

// ErrTryAgain marks failures the runtime should retry (API unreachable, pod not yet visible).
var ErrTryAgain = errors.New("try again later")

// cniError carries a CNI spec error code with a wrapped cause.
type cniError struct {
	code uint
	err  error
}

func (e *cniError) Error() string { return e.err.Error() }
func (e *cniError) Unwrap() error { return e.err }

func invalidf(code uint, format string, a ...any) error {
	return &cniError{code: code, err: fmt.Errorf(format, a...)}
}

// ToCNI turns any error of the ADD/DEL/CHECK path into the CNI error the runtime gets: the
// spec code decided by the error's type, the message the whole chain.
func ToCNI(err error) *types.Error {
	if err == nil {
		return nil
	}
	code := uint(types.ErrInternal)
	var ce *cniError
	var te *types.Error
	switch {
	case errors.As(err, &ce):
		code = ce.code
	case errors.Is(err, ErrTryAgain):
		code = types.ErrTryAgainLater
	case errors.As(err, &te):
		code = te.Code
	}
	return &types.Error{Code: code, Msg: err.Error()}
}
