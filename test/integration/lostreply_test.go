package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/client-go/rest"

	"guestagent.io/operator/agentd/service/servicefake"
	gav1 "guestagent.io/operator/api/v1alpha1"
)

// loseReply is a transport that applies the first request matching match and then reports a
// network error to the caller, as when the API server goes away after applying a write.
type loseReply struct {
	next  http.RoundTripper
	match func(*http.Request, []byte) bool
	lost  atomic.Int32
}

func (l *loseReply) RoundTrip(req *http.Request) (*http.Response, error) {
	if l.lost.Load() > 0 || req.Body == nil || req.Method != http.MethodPut {
		return l.next.RoundTrip(req)
	}
	body, err := io.ReadAll(req.Body)
	_ = req.Body.Close()
	if err != nil {
		return nil, err
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	resp, err := l.next.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusOK || !l.match(req, body) || !l.lost.CompareAndSwap(0, 1) {
		return resp, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return nil, errors.New("connection reset by peer (injected after the write was applied)")
}

// TestLostReplies: agentd's writes of a command's claim and of its outcome are applied by the API
// server but their replies are lost. The claim is confirmed by an uncached read and the command
// executed once (not left Running until its deadline); a lost outcome reply is recognised (the
// outcome is there) and the command is not executed again.
func TestLostReplies(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name, phase string
		uuid        string
	}{
		{"claim", `"phase":"Running"`, "ffffffff-0000-4000-8000-000000000001"},
		{"outcome", `"phase":"Succeeded"`, "ffffffff-0000-4000-8000-000000000002"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmdName := "ping-lost-" + tc.name
			lr := &loseReply{match: func(req *http.Request, body []byte) bool {
				return strings.HasSuffix(req.URL.Path, "/guestagentcommands/"+cmdName+"/status") &&
					bytes.Contains(body, []byte(tc.phase))
			}}
			cfg := rest.CopyConfig(env.Config)
			cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { lr.next = rt; return lr })
			d := withQGA(domain(tc.uuid, "lost-"+tc.name))
			q := servicefake.NewQGA()
			q.Set(d.UUID, debianQGA(), qgaUp("7.2.22"))
			nodeName := "node-a"
			n := startNodeWithConfig(t, cfg, nodeName, q, d)
			NewWithT(t).Eventually(func() error { _, err := getGAS(ctx, defaultNS, d.UUID); return err }).WithTimeout(20 * time.Second).Should(Succeed())

			got := run(t, newCmd(defaultNS, cmdName, mustName(t, d.UUID), gav1.ActionPing))
			expect(t, got, gav1.PhaseSucceeded, gav1.ReasonCompleted, gav1.AgentQemu)
			// The server applies the write before the transport drops its reply, so the outcome can be
			// seen here a moment before lost is counted.
			NewWithT(t).Eventually(func() error {
				if lr.lost.Load() != 1 {
					return errors.New("no reply was lost: the test did not exercise the path")
				}
				return nil
			}).WithTimeout(5 * time.Second).Should(Succeed())
			NewWithT(t).Consistently(func() int { return n.qgaCalls("ping " + d.UUID) }).WithTimeout(2*time.Second).
				Should(Equal(1), "pings that reached the guest")
			if err := env.Client.Delete(ctx, got); err != nil {
				t.Fatal(fmt.Errorf("cleanup: %w", err))
			}
		})
	}
}
