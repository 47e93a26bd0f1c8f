package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/multinet/multinet/internal/cniapi"
)

// handler is the unit's own edge: it answers from fields, or panics.
type handler struct {
	result json.RawMessage
	err    error
	panics bool
}

func (h *handler) Add(context.Context, *cniapi.Request) (json.RawMessage, error) {
	if h.panics {
		panic("boom")
	}
	return h.result, h.err
}
func (h *handler) Del(context.Context, *cniapi.Request) error    { return h.err }
func (h *handler) Check(context.Context, *cniapi.Request) error  { return h.err }
func (h *handler) GC(context.Context, *cniapi.Request) error     { return h.err }
func (h *handler) Status(context.Context, *cniapi.Request) error { return h.err }

func toCNI(err error) *types.Error {
	var te *types.Error
	if errors.As(err, &te) {
		return te
	}
	return &types.Error{Code: types.ErrInternal, Msg: err.Error()}
}

func call(t *testing.T, h Handler, method, path, body string) (int, cniapi.Response) {
	t.Helper()
	s := New(h, toCNI, nil, time.Second, slog.New(slog.NewTextHandler(io.Discard, nil)))
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
	var resp cniapi.Response
	if rec.Code == http.StatusOK {
		if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
			t.Fatalf("reply is not JSON: %q", rec.Body.String())
		}
	}
	return rec.Code, resp
}

func TestBadRequestsGetCNIErrors(t *testing.T) {
	cases := []struct {
		name, body string
		code       uint
		msg        string
	}{
		{"not JSON", "{", types.ErrDecodingFailure, "bad request"},
		{"unknown command", `{"command":"FROB"}`, types.ErrInvalidEnvironmentVariables, `unknown CNI_COMMAND "FROB"`},
		{"oversized", `{"command":"ADD","config":"` + strings.Repeat("x", maxRequest) + `"}`, types.ErrDecodingFailure, "too large"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, resp := call(t, &handler{}, http.MethodPost, cniapi.Path, c.body)
			if status != http.StatusOK || resp.Error == nil || resp.Error.Code != c.code || !strings.Contains(resp.Error.Msg, c.msg) {
				t.Fatalf("HTTP %d, reply %+v; want CNI error %d mentioning %q", status, resp.Error, c.code, c.msg)
			}
		})
	}
}

func TestHandlerPanicBecomesAnErrorNotACrash(t *testing.T) {
	_, resp := call(t, &handler{panics: true}, http.MethodPost, cniapi.Path, `{"command":"ADD"}`)
	if resp.Error == nil || !strings.Contains(resp.Error.Msg, "internal error serving ADD") {
		t.Fatalf("reply %+v, want an internal error", resp)
	}
}

func TestResultAndErrorsAreRelayed(t *testing.T) {
	_, resp := call(t, &handler{result: json.RawMessage(`{"cniVersion":"1.0.0"}`)}, http.MethodPost, cniapi.Path, `{"command":"ADD"}`)
	if string(resp.Result) != `{"cniVersion":"1.0.0"}` || resp.Error != nil {
		t.Fatalf("ADD reply %+v", resp)
	}
	want := &types.Error{Code: 11, Msg: "later"}
	_, resp = call(t, &handler{err: want}, http.MethodPost, cniapi.Path, `{"command":"DEL"}`)
	if resp.Error == nil || *resp.Error != *want {
		t.Fatalf("DEL reply %+v, want %+v", resp.Error, want)
	}
}

func TestOnlyPostOnTheCNIPath(t *testing.T) {
	if status, _ := call(t, &handler{}, http.MethodGet, cniapi.Path, ""); status != http.StatusNotFound {
		t.Fatalf("GET %s: HTTP %d", cniapi.Path, status)
	}
}
