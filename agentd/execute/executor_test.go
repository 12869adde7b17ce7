package execute

import (
	"context"
	"errors"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestPermanent(t *testing.T) {
	gr := schema.GroupResource{Group: "guestagent.io", Resource: "guestagentcommands"}
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"object not found", apierrors.NewNotFound(gr, "x"), true},
		{"path not served yet (404 page)", apierrors.NewGenericServerResponse(http.StatusNotFound, "PUT", gr, "x", "404 page not found", 0, true), false},
		{"conflict", apierrors.NewConflict(gr, "x", errors.New("changed")), true},
		{"invalid", apierrors.NewInvalid(schema.GroupKind{Group: gr.Group, Kind: "GuestAgentCommand"}, "x", nil), true},
		{"forbidden", apierrors.NewForbidden(gr, "x", errors.New("denied")), true},
		{"connection refused", &dialError{syscall.ECONNREFUSED}, false},
		{"unavailable", apierrors.NewServiceUnavailable("starting"), false},
		{"too many requests", apierrors.NewTooManyRequests("slow down", 1), false},
		{"timeout", apierrors.NewTimeoutError("slow", 1), false},
		{"internal", apierrors.NewInternalError(errors.New("etcd")), false},
		{"cancelled", context.Canceled, true},
	}
	for _, c := range cases {
		if got := permanent(c.err); got != c.want {
			t.Errorf("%s: permanent = %v, want %v", c.name, got, c.want)
		}
	}
}

type dialError struct{ errno syscall.Errno } // like *net.OpError

func (e *dialError) Error() string { return "dial tcp 127.0.0.1:6443: " + e.errno.Error() }
func (e *dialError) Unwrap() error { return e.errno }

func TestRetryTransient(t *testing.T) {
	ctx := context.Background()
	calls := 0
	err := retryTransient(ctx, logr.Discard(), "w", func() error {
		calls++
		if calls < 3 {
			return apierrors.NewServiceUnavailable("starting")
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("transient errors then success: err %v after %d calls, want nil after 3", err, calls)
	}

	calls = 0
	conflict := apierrors.NewConflict(schema.GroupResource{Resource: "r"}, "x", errors.New("changed"))
	err = retryTransient(ctx, logr.Discard(), "w", func() error { calls++; return conflict })
	if !apierrors.IsConflict(err) || calls != 1 {
		t.Fatalf("permanent error: %v after %d calls, want the conflict after 1", err, calls)
	}

	cctx, cancel := context.WithTimeout(ctx, 600*time.Millisecond)
	defer cancel()
	calls = 0
	err = retryTransient(cctx, logr.Discard(), "w", func() error { calls++; return apierrors.NewServiceUnavailable("down") })
	if !apierrors.IsServiceUnavailable(err) || calls < 2 {
		t.Fatalf("until the context ends: %v after %d calls, want the last error after ≥ 2 calls", err, calls)
	}
}
