package virt

import "github.com/prometheus/client_golang/prometheus"

// libvirtCalls counts the libvirt API calls the Manager makes that reach libvirtd (remote
// procedure calls), by operation; the QEMU guest agent's own calls are counted by package qga.
var libvirtCalls = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "guestagent_agentd_libvirt_calls_total",
	Help: "libvirt calls made by agentd's domain watcher (listing, per-domain reads, lookups, memory statistics), by operation.",
}, []string{"operation"})

// Operations counted in guestagent_agentd_libvirt_calls_total.
const (
	opListDomains  = "list_domains"
	opLookupDomain = "lookup_domain"
	opState        = "domain_state"
	opPersistent   = "domain_is_persistent"
	opXML          = "domain_xml"
	opMemoryStats  = "domain_memory_stats"
	opStatsPeriod  = "domain_set_memory_stats_period"
	opInfo         = "domain_info"
	opJob          = "domain_job_info"
)

var (
	callsList       = libvirtCalls.WithLabelValues(opListDomains)
	callsLookup     = libvirtCalls.WithLabelValues(opLookupDomain)
	callsState      = libvirtCalls.WithLabelValues(opState)
	callsPersistent = libvirtCalls.WithLabelValues(opPersistent)
	callsXML        = libvirtCalls.WithLabelValues(opXML)

	callsMemoryStats    = libvirtCalls.WithLabelValues(opMemoryStats)
	callsSetStatsPeriod = libvirtCalls.WithLabelValues(opStatsPeriod)
	callsInfo           = libvirtCalls.WithLabelValues(opInfo)
	callsJob            = libvirtCalls.WithLabelValues(opJob)
)

// MustRegisterMetrics registers the watcher's libvirt call counter with reg (once per registry).
func MustRegisterMetrics(reg prometheus.Registerer) { reg.MustRegister(libvirtCalls) }
