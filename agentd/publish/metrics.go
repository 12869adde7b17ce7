package publish

import "github.com/prometheus/client_golang/prometheus"

// Results of an API write, the values of the result label of guestagent_agentd_status_writes_total.
const (
	ResultSuccess  = "success"
	ResultConflict = "conflict"
	ResultInvalid  = "invalid"
	ResultError    = "error"
)

var (
	statusWrites = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "guestagent_agentd_status_writes_total",
		Help: "GuestAgentStatus API writes (create, adopt, status apply, delete) by result.",
	}, []string{"result"})
	skippedUnchanged = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "guestagent_agentd_status_skipped_unchanged_total",
		Help: "Publish decisions that needed no write because the status was semantically unchanged.",
	})
	queueDepth = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "guestagent_agentd_publish_queue_depth",
		Help: "Domains waiting in the publisher's work queue.",
	})
	takenOver = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "guestagent_agentd_status_taken_over_total",
		Help: "GuestAgentStatus objects of domains running on this node that another node took over without a release (agentd takes them back).",
	})
	releaseWaits = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "guestagent_agentd_status_release_waits_total",
		Help: "Re-reads of a GuestAgentStatus that names another node which has not released it yet (or whose take-over was refused).",
	})
	heldObjects = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "guestagent_agentd_publish_held_for_api",
		Help: "Domains whose status write waits for an unavailable API server (0 when it answers).",
	})
)

// MustRegister registers the publisher's collectors with reg. Call it once per process (for
// example with controller-runtime's metrics.Registry); it panics on a duplicate registration.
func MustRegister(reg prometheus.Registerer) {
	reg.MustRegister(statusWrites, skippedUnchanged, queueDepth, heldObjects, takenOver, releaseWaits)
}

func writeResult(err error) string {
	switch {
	case err == nil:
		return ResultSuccess
	case isConflict(err):
		return ResultConflict
	case isPermanent(err):
		return ResultInvalid
	default:
		return ResultError
	}
}
