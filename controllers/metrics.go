package controllers

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Values of the result label of guestagent_command_total.
const (
	ResultSucceeded        = "succeeded"
	ResultAlreadyExecuted  = "already_executed"
	ResultFailed           = "failed"
	ResultDeadlineExceeded = "deadline_exceeded"
)

var (
	commandTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "guestagent_command_total",
		Help: "Finished GuestAgentCommands by action and result (succeeded, already_executed, failed, deadline_exceeded).",
	}, []string{"action", "result"})

	commandDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "guestagent_command_duration_seconds",
		Help:    "Time from creation to completion of finished GuestAgentCommands, by action.",
		Buckets: []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600},
	}, []string{"action"})
)

func init() {
	metrics.Registry.MustRegister(commandTotal, commandDuration)
}
