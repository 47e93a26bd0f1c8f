package attach

import (
	"errors"
	"fmt"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/multinet/multinet/internal/checkpoint"
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

// permanent tells whether a DEL error of an attachment whose ADD never completed is one no
// retry can change, because the plugin itself refused the recorded call, which every retry
// repeats unchanged: a spec code for a bad config, CNI version or argument, or exactly the
// error the plugin gave to that attachment's ADD (plugins report most config faults as
// code 999, so the code alone does not tell). Anything else may pass: a binary not found, a
// plugin killed, a timeout, a plugin's internal error that its ADD did not have.
func permanent(delErr error, a *checkpoint.Attachment) bool {
	var te *types.Error
	if a.State == checkpoint.Added || !errors.As(delErr, &te) {
		return false
	}
	switch te.Code {
	case types.ErrIncompatibleCNIVersion, types.ErrUnsupportedField, types.ErrInvalidEnvironmentVariables,
		types.ErrDecodingFailure, types.ErrInvalidNetworkConfig:
		return true
	}
	return a.AddError != nil && *te == *a.AddError
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
