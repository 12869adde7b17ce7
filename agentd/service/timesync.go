package service

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"guestagent.io/operator/agentd/virt"
	gav1 "guestagent.io/operator/api/v1alpha1"
)

// Guest clocks stop while a domain is paused, saved or in the final phase of a migration (on
// the destination, or on the source when it failed and the domain runs there again): after
// such a gap the guest runs behind by the time it did not run. When TimeSync is on, the service
// sets the guest clock from the host through the QEMU guest agent (guest-set-time) after each of
// these lifecycle transitions, as VDSM and KubeVirt do.

// Results of a time sync, the result label of guestagent_agentd_time_syncs_total.
const (
	timeSyncSet     = "set"
	timeSyncSkipped = "skipped" // the agent cannot set the time, or the domain left
	timeSyncFailed  = "failed"  // the guest refused, or no usable agent until TimeSyncTimeout
)

func newTimeSyncCounter() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "guestagent_agentd_time_syncs_total",
		Help: "Guest clocks set from the host after a pause, restore, migration or snapshot revert, by result (set, skipped, failed).",
	}, []string{"result"})
}

// clockGap reports whether lc ends a period in which the guest clock did not run.
func clockGap(lc virt.Lifecycle) bool {
	switch lc {
	case virt.LifecycleResumed, virt.LifecycleMigratedIn, virt.LifecycleMigrationFailed, virt.LifecycleRestored,
		virt.LifecycleFromSnapshot, virt.LifecycleWokeUp:
		return true
	}
	return false
}

// Time sync retry bounds: the agent may need a moment after the transition (its channel
// reconnects after a migration or a restore).
const (
	timeSyncFirstRetry = 500 * time.Millisecond
	timeSyncMaxRetry   = 5 * time.Second
)

// syncClock sets the guest clock of d in the background after lifecycle transition lc, retrying
// while the agent is not usable yet (not connected, not answering) until Options.TimeSyncTimeout.
// A domain without a QEMU guest agent channel is left alone; an agent without guest-set-time, or
// one that refuses, is not asked again.
func (s *GuestAgentService) syncClock(d virt.Domain, lc virt.Lifecycle) {
	if !s.opts.TimeSync || !d.HasQGAChannel || !clockGap(lc) {
		return
	}
	s.background(func(parent context.Context) {
		ctx, cancel := context.WithTimeout(parent, s.opts.TimeSyncTimeout)
		defer cancel()
		req := Request{Spec: gav1.GuestAgentCommandSpec{Action: gav1.ActionSetTime, Agent: gav1.AgentSelectQemu}}
		delay := timeSyncFirstRetry
		for attempt := 1; ; attempt++ {
			_, err := s.Execute(ctx, d.UUID, req)
			if err == nil {
				s.log.Info("Guest clock set from the host", "domainUUID", d.UUID, "lifecycle", lc.String(), "attempts", attempt)
				s.timeSyncs.WithLabelValues(timeSyncSet).Inc()
				return
			}
			reason := gav1.ReasonAgentError
			var ee *ExecError
			if errors.As(err, &ee) {
				reason = ee.Reason
			}
			switch reason {
			case gav1.ReasonAgentUnavailable, gav1.ReasonAgentTimeout: // not usable yet: retried
			case gav1.ReasonAgentUnsupported, gav1.ReasonDomainNotFound:
				s.log.Info("Guest clock not set", "domainUUID", d.UUID, "lifecycle", lc.String(), "reason", reason, "error", err.Error())
				s.timeSyncs.WithLabelValues(timeSyncSkipped).Inc()
				return
			default: // the guest refused: trying again would not help
				s.log.Info("Guest clock not set", "domainUUID", d.UUID, "lifecycle", lc.String(), "reason", reason, "error", err.Error())
				s.timeSyncs.WithLabelValues(timeSyncFailed).Inc()
				return
			}
			select {
			case <-ctx.Done():
				s.log.Info("Guest clock not set", "domainUUID", d.UUID, "lifecycle", lc.String(), "attempts", attempt, "error", err.Error())
				s.timeSyncs.WithLabelValues(timeSyncFailed).Inc()
				return
			case <-time.After(delay):
			}
			delay = min(2*delay, timeSyncMaxRetry)
		}
	})
}
