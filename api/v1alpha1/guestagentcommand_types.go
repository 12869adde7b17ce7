package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Action is what a GuestAgentCommand asks the guest to do.
// +kubebuilder:validation:Enum=Shutdown;Reboot;Hook;LockScreen;LogOff;FreezeFilesystems;ThawFilesystems;SetTime;SetVCPUs;Ping;Hibernate;Suspend
type Action string

// Actions.
const (
	ActionShutdown          Action = "Shutdown"
	ActionReboot            Action = "Reboot"
	ActionHook              Action = "Hook"
	ActionLockScreen        Action = "LockScreen"
	ActionLogOff            Action = "LogOff"
	ActionFreezeFilesystems Action = "FreezeFilesystems"
	ActionThawFilesystems   Action = "ThawFilesystems"
	ActionSetTime           Action = "SetTime"
	// ActionSetVCPUs sets how many of the guest's vCPUs are online (spec.setVCPUs.count).
	ActionSetVCPUs Action = "SetVCPUs"
	ActionPing     Action = "Ping"
	// ActionHibernate saves the domain's memory on the host (libvirt managed save) after preparing
	// the guest through the oVirt guest agent (screen lock, before_hibernation hooks).
	ActionHibernate Action = "Hibernate"
	// ActionSuspend asks the guest to suspend itself (guest-suspend-ram|hybrid|disk through libvirt
	// and the QEMU guest agent; the oVirt agent's hibernate for Ram and Disk).
	ActionSuspend Action = "Suspend"
)

// AgentSelector chooses which agent serves a command.
// +kubebuilder:validation:Enum=Auto;QemuGuestAgent;OvirtGuestAgent;Both
type AgentSelector string

// AgentSelector values.
const (
	// AgentAuto lets agentd route the command (QGA first for power actions; OGA for hooks, lock,
	// log-off).
	AgentAuto AgentSelector = "Auto"
	// AgentSelectQemu sends the command only to the QEMU guest agent.
	AgentSelectQemu AgentSelector = "QemuGuestAgent"
	// AgentSelectOvirt sends the command only to the oVirt guest agent.
	AgentSelectOvirt AgentSelector = "OvirtGuestAgent"
	// AgentBoth sends the command to both agents; it succeeds if one succeeds.
	AgentBoth AgentSelector = "Both"
)

// Fallback is a host-side action taken when no selected agent can serve a power action.
// +kubebuilder:validation:Enum=None;ACPI
type Fallback string

// Fallback values.
const (
	FallbackNone Fallback = "None"
	FallbackACPI Fallback = "ACPI"
)

// PowerMethod is one step of a power policy (Shutdown, Reboot, Suspend), or of a Hibernate.
// +kubebuilder:validation:Enum=QemuGuestAgent;OvirtGuestAgent;ACPI;Destroy;ManagedSave
type PowerMethod string

// Power methods.
const (
	// PowerQemu asks the QEMU guest agent (guest-shutdown).
	PowerQemu PowerMethod = "QemuGuestAgent"
	// PowerOvirt asks the oVirt guest agent (shutdown message, with delay and message).
	PowerOvirt PowerMethod = "OvirtGuestAgent"
	// PowerACPI presses the ACPI power button through libvirt (Reboot: libvirt's ACPI reboot).
	PowerACPI PowerMethod = "ACPI"
	// PowerDestroy forces it: Shutdown destroys the domain (SIGTERM, then SIGKILL after libvirt's
	// grace), Reboot resets it (virDomainReset, the reset button). Taken only when listed.
	PowerDestroy PowerMethod = "Destroy"
	// PowerManagedSave is the host-side step of a Hibernate: libvirt's managed save
	// (virDomainManagedSave). It only appears in status.powerSteps; it is not a method of a power
	// policy.
	PowerManagedSave PowerMethod = "ManagedSave"
)

// StepOperation says what a step of a Hibernate asked the oVirt guest agent for (the steps of a
// power policy need none: their method says it).
// +kubebuilder:validation:Enum=LockScreen;BeforeHibernation;AfterHibernation
type StepOperation string

// Step operations.
const (
	// OperationLockScreen: lock-screen, then a wait for the session to be Locked or LoggedOff.
	OperationLockScreen StepOperation = "LockScreen"
	// OperationBeforeHibernation: the before_hibernation hooks, waiting for their completion.
	OperationBeforeHibernation StepOperation = "BeforeHibernation"
	// OperationAfterHibernation: the after_hibernation hooks with failure, after a failed save.
	OperationAfterHibernation StepOperation = "AfterHibernation"
)

// PowerStepResult is what one step of a power policy did.
// +kubebuilder:validation:Enum=Accepted;Refused;Skipped;TimedOut;Error
type PowerStepResult string

// Power step results.
const (
	// StepAccepted: the method took the request and the domain then reached the wanted state.
	StepAccepted PowerStepResult = "Accepted"
	// StepRefused: the agent answered with an error (or does not support the request).
	StepRefused PowerStepResult = "Refused"
	// StepSkipped: the agent is not connected or not responsive; nothing was sent.
	StepSkipped PowerStepResult = "Skipped"
	// StepTimedOut: the method took the request but the domain did not shut off (or reboot)
	// within the grace period.
	StepTimedOut PowerStepResult = "TimedOut"
	// StepError: the request could not be delivered (agent timeout, libvirt error).
	StepError PowerStepResult = "Error"
)

// PowerPolicy says how a Shutdown or Reboot is carried out: the methods tried in order and how long
// each one is given to bring the domain down (or through a reboot).
type PowerPolicy struct {
	// methods are tried in order until the domain is shut off (Shutdown), has rebooted (Reboot) or
	// is suspended (Suspend). The next method is tried when one is skipped (agent not connected or
	// not responsive), refused, fails, or does not bring the domain down within
	// gracePeriodSeconds. Default [QemuGuestAgent, OvirtGuestAgent, ACPI] (Suspend:
	// [QemuGuestAgent, OvirtGuestAgent], mode Hybrid [QemuGuestAgent]); Destroy is never taken
	// unless listed. Suspend takes only QemuGuestAgent and OvirtGuestAgent.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=4
	// +kubebuilder:validation:XValidation:rule="self.all(m, m != 'ManagedSave')",message="ManagedSave is the save step of a Hibernate, not a power method"
	Methods []PowerMethod `json:"methods,omitempty"`
	// gracePeriodSeconds is how long each method that took the request is given before the next
	// one is tried. The sum over the methods must fit in deadlineSeconds.
	// +optional
	// +kubebuilder:default=60
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=3600
	GracePeriodSeconds *int32 `json:"gracePeriodSeconds,omitempty"`
}

// PowerStep records one step of a power policy or of a Hibernate.
type PowerStep struct {
	// method is the method of this step.
	// +required
	Method PowerMethod `json:"method"`
	// operation says what a Hibernate's oVirt guest agent step asked for: LockScreen,
	// BeforeHibernation or AfterHibernation. Empty for the other steps.
	// +optional
	Operation StepOperation `json:"operation,omitempty"`
	// result is what the step did.
	// +required
	Result PowerStepResult `json:"result"`
	// time is when the step was taken (its request sent, or skipped).
	// +required
	Time metav1.Time `json:"time"`
	// message explains the result.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	Message string `json:"message,omitempty"`
}

// ShutdownMode selects how the guest powers off.
// +kubebuilder:validation:Enum=Powerdown;Halt
type ShutdownMode string

// ShutdownMode values.
const (
	ShutdownPowerdown ShutdownMode = "Powerdown"
	ShutdownHalt      ShutdownMode = "Halt"
)

// HookName is a guest hook (a directory of scripts under the oVirt agent's hooks.d).
// +kubebuilder:validation:Enum=before_migration;after_migration;before_hibernation;after_hibernation
type HookName string

// Hook names, exactly as the guest expects them.
const (
	HookBeforeMigration   HookName = "before_migration"
	HookAfterMigration    HookName = "after_migration"
	HookBeforeHibernation HookName = "before_hibernation"
	HookAfterHibernation  HookName = "after_hibernation"
)

// CommandPhase is the coarse lifecycle of a command, for `kubectl get`.
// +kubebuilder:validation:Enum=Pending;Scheduled;Running;Succeeded;Failed
type CommandPhase string

// Phases. Succeeded and Failed are terminal and never change.
const (
	PhasePending   CommandPhase = "Pending"
	PhaseScheduled CommandPhase = "Scheduled"
	PhaseRunning   CommandPhase = "Running"
	PhaseSucceeded CommandPhase = "Succeeded"
	PhaseFailed    CommandPhase = "Failed"
)

// IsTerminal reports whether p is Succeeded or Failed.
func (p CommandPhase) IsTerminal() bool { return p == PhaseSucceeded || p == PhaseFailed }

// Condition types of a GuestAgentCommand.
const (
	// ConditionAccepted is True once the controller validated the command and resolved its target.
	ConditionAccepted = "Accepted"
	// ConditionSucceeded is Unknown while the command runs, then True or False, and never changes.
	ConditionSucceeded = "Succeeded"
)

// Reasons of a GuestAgentCommand's conditions and status.reason.
const (
	ReasonPending          = "Pending"
	ReasonScheduled        = "Scheduled"
	ReasonRunning          = "Running"
	ReasonCompleted        = "Completed"
	ReasonAlreadyExecuted  = "AlreadyExecuted"
	ReasonInvalidSpec      = "InvalidSpec"
	ReasonTargetNotFound   = "TargetNotFound"
	ReasonTargetNotPlaced  = "TargetNotPlaced"
	ReasonDeadlineExceeded = "DeadlineExceeded"
	ReasonAgentRestarted   = "AgentRestarted"
	ReasonDomainNotFound   = "DomainNotFound"
	ReasonAgentUnavailable = "AgentUnavailable"
	ReasonAgentUnsupported = "AgentUnsupported"
	ReasonAgentTimeout     = "AgentTimeout"
	ReasonAgentError       = "AgentError"
	ReasonFallbackFailed   = "FallbackFailed"
	// ReasonShutOff: a Shutdown succeeded; libvirt shows the domain shut off.
	ReasonShutOff = "ShutOff"
	// ReasonRebooted: a Reboot succeeded; libvirt reported the domain's reboot.
	ReasonRebooted = "Rebooted"
	// ReasonNotShutOff: every method of a Shutdown's policy was tried; the domain still runs.
	ReasonNotShutOff = "NotShutOff"
	// ReasonNotRebooted: every method of a Reboot's policy was tried without a reboot being seen.
	ReasonNotRebooted = "NotRebooted"
	// ReasonHibernated: a Hibernate succeeded; libvirt shows the domain shut off with a managed
	// save image.
	ReasonHibernated = "Hibernated"
	// ReasonSaveFailed: a Hibernate's managed save failed (or left no save image); the guest runs on
	// and was sent after_hibernation with failure.
	ReasonSaveFailed = "SaveFailed"
	// ReasonSuspended: a Suspend succeeded; libvirt shows the domain PM-suspended (mode Disk: shut
	// off after the guest's suspend to disk).
	ReasonSuspended = "Suspended"
	// ReasonNotSuspended: every method of a Suspend's policy was tried without the domain being
	// suspended.
	ReasonNotSuspended = "NotSuspended"
)

// Defaults.
const (
	DefaultDeadlineSeconds         int32 = 300
	DefaultTTLSecondsAfterFinished int32 = 3600
	DefaultHookTimeoutSeconds      int32 = 10
	DefaultThawAfterSeconds        int32 = 60
	DefaultPowerGracePeriodSeconds int32 = 60
	// DefaultLockTimeoutSeconds is how long a Hibernate waits for the guest session to be locked
	// (VDSM waits up to 30 s).
	DefaultLockTimeoutSeconds int32 = 30
	// MaxPowerSteps caps status.powerSteps (one entry per method, at most 4 methods).
	MaxPowerSteps = 8
)

// ShutdownParams parameterise Shutdown.
type ShutdownParams struct {
	// delaySeconds asks the guest to wait before shutting down (oVirt agent only: refused when the
	// power methods include QemuGuestAgent, which acts at once).
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=86400
	DelaySeconds *int32 `json:"delaySeconds,omitempty"`
	// message is shown to logged-in users (oVirt agent only).
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Message string `json:"message,omitempty"`
	// mode is Powerdown (default) or Halt.
	// +optional
	// +kubebuilder:default=Powerdown
	Mode ShutdownMode `json:"mode,omitempty"`
}

// RebootParams parameterise Reboot.
type RebootParams struct {
	// delaySeconds asks the guest to wait before rebooting (oVirt agent only).
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=86400
	DelaySeconds *int32 `json:"delaySeconds,omitempty"`
	// message is shown to logged-in users (oVirt agent only).
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Message string `json:"message,omitempty"`
}

// HookParams parameterise Hook.
type HookParams struct {
	// name is the hook to run in the guest.
	// +required
	Name HookName `json:"name"`
	// failure marks an after_* hook as reporting a failed migration or hibernation.
	// +optional
	Failure bool `json:"failure,omitempty"`
	// waitForCompletion waits for the guest to report that the hook scripts finished.
	// +optional
	// +kubebuilder:default=true
	WaitForCompletion *bool `json:"waitForCompletion,omitempty"`
	// timeoutSeconds bounds the wait for completion.
	// +optional
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=600
	TimeoutSeconds *int32 `json:"timeoutSeconds,omitempty"`
}

// HibernateParams parameterise Hibernate.
type HibernateParams struct {
	// lockTimeoutSeconds bounds the wait for the guest session to be Locked (or LoggedOff) after
	// the oVirt guest agent's lock-screen; the hibernation goes on when it passes.
	// +optional
	// +kubebuilder:default=30
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=300
	LockTimeoutSeconds *int32 `json:"lockTimeoutSeconds,omitempty"`
	// hookTimeoutSeconds bounds the wait for the completion of the guest's before_hibernation
	// hooks; the hibernation goes on when it passes.
	// +optional
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=600
	HookTimeoutSeconds *int32 `json:"hookTimeoutSeconds,omitempty"`
}

// SuspendMode is the guest power-management state a Suspend asks for.
// +kubebuilder:validation:Enum=Ram;Hybrid;Disk
type SuspendMode string

// Suspend modes.
const (
	// SuspendRam is suspend to RAM (S3): QGA guest-suspend-ram, or the oVirt agent's hibernate mem.
	SuspendRam SuspendMode = "Ram"
	// SuspendHybrid writes the memory to disk and then suspends to RAM: QGA guest-suspend-hybrid only.
	SuspendHybrid SuspendMode = "Hybrid"
	// SuspendDisk is the guest's own hibernation (S4), after which the domain shuts off: QGA
	// guest-suspend-disk, or the oVirt agent's hibernate disk.
	SuspendDisk SuspendMode = "Disk"
)

// SuspendParams parameterise Suspend.
type SuspendParams struct {
	// mode is Ram (default), Hybrid or Disk.
	// +optional
	// +kubebuilder:default=Ram
	Mode SuspendMode `json:"mode,omitempty"`
}

// FreezeParams parameterise FreezeFilesystems.
type FreezeParams struct {
	// mountpoints limits the freeze to these mountpoints; empty freezes all.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=1024
	Mountpoints []string `json:"mountpoints,omitempty"`
	// thawAfterSeconds thaws the filesystems automatically after this long, so a forgotten freeze
	// never hangs the guest.
	// +optional
	// +kubebuilder:default=60
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=600
	ThawAfterSeconds *int32 `json:"thawAfterSeconds,omitempty"`
}

// SetVCPUsParams parameterise SetVCPUs.
type SetVCPUsParams struct {
	// count is the number of vCPUs the guest should have online. It must not exceed the domain's
	// maximum vCPUs nor the vCPUs the guest sees; vCPU 0 and vCPUs the guest cannot take offline
	// stay online, so a count below them fails.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=4096
	Count int32 `json:"count"`
}

// GuestAgentCommandSpec is the request. It is immutable.
// +kubebuilder:validation:XValidation:rule="!has(self.shutdown) || self.action == 'Shutdown'",message="shutdown parameters need action Shutdown"
// +kubebuilder:validation:XValidation:rule="!has(self.reboot) || self.action == 'Reboot'",message="reboot parameters need action Reboot"
// +kubebuilder:validation:XValidation:rule="has(self.hook) == (self.action == 'Hook')",message="action Hook needs hook parameters, and only it takes them"
// +kubebuilder:validation:XValidation:rule="!has(self.freeze) || self.action == 'FreezeFilesystems'",message="freeze parameters need action FreezeFilesystems"
// +kubebuilder:validation:XValidation:rule="has(self.setVCPUs) == (self.action == 'SetVCPUs')",message="action SetVCPUs needs setVCPUs parameters, and only it takes them"
// +kubebuilder:validation:XValidation:rule="!has(self.fallback) || self.fallback == 'None' || self.action in ['Shutdown', 'Reboot']",message="fallback is only for Shutdown and Reboot"
// +kubebuilder:validation:XValidation:rule="!has(self.power) || self.action in ['Shutdown', 'Reboot', 'Suspend']",message="power is only for Shutdown, Reboot and Suspend"
// +kubebuilder:validation:XValidation:rule="!has(self.hibernate) || self.action == 'Hibernate'",message="hibernate parameters need action Hibernate"
// +kubebuilder:validation:XValidation:rule="!has(self.suspend) || self.action == 'Suspend'",message="suspend parameters need action Suspend"
// +kubebuilder:validation:XValidation:rule="self.action != 'Hibernate' || !has(self.agent) || self.agent in ['Auto', 'OvirtGuestAgent']",message="Hibernate takes agent Auto (the oVirt guest agent's steps are skipped when it is not usable) or OvirtGuestAgent (they are required)"
// +kubebuilder:validation:XValidation:rule="self.action != 'Suspend' || !has(self.power) || !has(self.power.methods) || self.power.methods.all(m, m in ['QemuGuestAgent', 'OvirtGuestAgent'])",message="a Suspend's power.methods take only QemuGuestAgent and OvirtGuestAgent"
// +kubebuilder:validation:XValidation:rule="self.action != 'Suspend' || !has(self.suspend) || !has(self.suspend.mode) || self.suspend.mode != 'Hybrid' || ((!has(self.agent) || self.agent in ['Auto', 'QemuGuestAgent']) && (!has(self.power) || !has(self.power.methods) || !('OvirtGuestAgent' in self.power.methods)))",message="mode Hybrid is served only by the QEMU guest agent (guest-suspend-hybrid): the oVirt agent's hibernate has no hybrid state"
// +kubebuilder:validation:XValidation:rule="!has(self.power) || !has(self.power.methods) || ((!has(self.agent) || self.agent == 'Auto') && (!has(self.fallback) || self.fallback == 'None'))",message="power.methods replaces agent and fallback: leave agent Auto and fallback None"
// +kubebuilder:validation:XValidation:rule="!((has(self.power) && has(self.power.methods)) ? ('QemuGuestAgent' in self.power.methods) : (self.action in ['Shutdown', 'Reboot'] && (!has(self.agent) || self.agent != 'OvirtGuestAgent'))) || ((!has(self.shutdown) || ((!has(self.shutdown.delaySeconds) || self.shutdown.delaySeconds == 0) && (!has(self.shutdown.message) || size(self.shutdown.message) == 0))) && (!has(self.reboot) || ((!has(self.reboot.delaySeconds) || self.reboot.delaySeconds == 0) && (!has(self.reboot.message) || size(self.reboot.message) == 0))))",message="delaySeconds and message are served only by the oVirt guest agent, but the power methods include QemuGuestAgent (its guest-shutdown has neither): list only OvirtGuestAgent (and ACPI/Destroy), or drop them"
type GuestAgentCommandSpec struct {
	// target is the name of a GuestAgentStatus in the same namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Target string `json:"target"`

	// action is what to do.
	// +required
	Action Action `json:"action"`

	// shutdown parameterises action Shutdown.
	// +optional
	Shutdown *ShutdownParams `json:"shutdown,omitempty"`

	// reboot parameterises action Reboot.
	// +optional
	Reboot *RebootParams `json:"reboot,omitempty"`

	// hook parameterises action Hook.
	// +optional
	Hook *HookParams `json:"hook,omitempty"`

	// freeze parameterises action FreezeFilesystems.
	// +optional
	Freeze *FreezeParams `json:"freeze,omitempty"`

	// setVCPUs parameterises action SetVCPUs.
	// +optional
	SetVCPUs *SetVCPUsParams `json:"setVCPUs,omitempty"`

	// hibernate parameterises action Hibernate.
	// +optional
	Hibernate *HibernateParams `json:"hibernate,omitempty"`

	// suspend parameterises action Suspend.
	// +optional
	Suspend *SuspendParams `json:"suspend,omitempty"`

	// agent chooses the agent: Auto (default), QemuGuestAgent, OvirtGuestAgent or Both. For
	// Shutdown and Reboot without power.methods it chooses the policy's methods: Auto the default
	// methods, a named agent that agent alone, Both QemuGuestAgent then OvirtGuestAgent.
	// +optional
	// +kubebuilder:default=Auto
	Agent AgentSelector `json:"agent,omitempty"`

	// fallback is None (default) or ACPI. For Shutdown and Reboot without power.methods, ACPI is
	// appended to the methods of the power policy (see power).
	// +optional
	// +kubebuilder:default=None
	Fallback Fallback `json:"fallback,omitempty"`

	// power is the policy of a Shutdown, Reboot or Suspend: the methods tried in order and the
	// grace period of each. Without it the methods follow agent and fallback (agent Auto: QemuGuestAgent,
	// OvirtGuestAgent, ACPI).
	// +optional
	Power *PowerPolicy `json:"power,omitempty"`

	// deadlineSeconds bounds the whole command from creation; past it the command fails with
	// DeadlineExceeded.
	// +optional
	// +kubebuilder:default=300
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=86400
	DeadlineSeconds *int32 `json:"deadlineSeconds,omitempty"`

	// ttlSecondsAfterFinished deletes the command this long after it finished.
	// +optional
	// +kubebuilder:default=3600
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=31536000
	TTLSecondsAfterFinished *int32 `json:"ttlSecondsAfterFinished,omitempty"`
}

// GuestAgentCommandStatus is the outcome. The apiserver enforces that a terminal phase (Succeeded,
// Failed) never changes, so a late writer (e.g. agentd reporting after the deadline failed the
// command) loses instead of flipping the outcome.
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.phase) || !(oldSelf.phase in ['Succeeded', 'Failed']) || (has(self.phase) && self.phase == oldSelf.phase)",message="phase Succeeded and Failed are terminal and never change"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.outcomeReported) || !oldSelf.outcomeReported || (has(self.outcomeReported) && self.outcomeReported)",message="outcomeReported is never unset"
// +kubebuilder:validation:XValidation:rule="!has(self.outcomeReported) || !self.outcomeReported || (has(self.phase) && self.phase in ['Succeeded', 'Failed'])",message="outcomeReported needs phase Succeeded or Failed"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.nodeName) || size(oldSelf.nodeName) == 0 || !has(oldSelf.phase) || !(oldSelf.phase in ['Running', 'Succeeded', 'Failed']) || (has(self.nodeName) && self.nodeName == oldSelf.nodeName)",message="nodeName of a claimed command never changes"
type GuestAgentCommandStatus struct {
	// conditions are Accepted and Succeeded.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// phase is Pending, Scheduled, Running, Succeeded or Failed.
	// +optional
	Phase CommandPhase `json:"phase,omitempty"`

	// nodeName is the node the command was scheduled to; only the controller sets it, and it never
	// changes once an agentd claimed the command. agentd selects its commands by this field
	// (field selector status.nodeName), never by a label a tenant could write.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	NodeName string `json:"nodeName,omitempty"`

	// domainUUID is the domain the command was resolved to.
	// +optional
	// +kubebuilder:validation:MaxLength=36
	DomainUUID string `json:"domainUUID,omitempty"`

	// agents are what served the command: QemuGuestAgent, OvirtGuestAgent, or ACPI for a fallback.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=3
	Agents []AgentType `json:"agents,omitempty"`

	// powerSteps records the steps of a Shutdown's, Reboot's or Suspend's power policy, or of a
	// Hibernate, in order.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=8
	PowerSteps []PowerStep `json:"powerSteps,omitempty"`

	// claimedBy identifies the agentd instance that claimed the command (its pod UID or boot id).
	// +optional
	// +kubebuilder:validation:MaxLength=128
	ClaimedBy string `json:"claimedBy,omitempty"`

	// startTime is when agentd claimed the command.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`

	// completionTime is when the command finished.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`

	// reason is a CamelCase summary of the outcome.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Reason string `json:"reason,omitempty"`

	// message explains the outcome.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	Message string `json:"message,omitempty"`

	// observedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// outcomeReported is set by the controller, on a finished command, once it reported the
	// outcome (one Event, one metrics observation); it is never unset. It lives in the status,
	// which only the controller and the command's agentd may write, so a tenant can neither hide
	// an outcome nor have it reported twice.
	// +optional
	OutcomeReported bool `json:"outcomeReported,omitempty"`
}

// GuestAgentCommand asks the guest agents of one domain to do something, once.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,shortName=gac,categories=guestagent
// +kubebuilder:printcolumn:name="Target",type=string,JSONPath=`.spec.target`
// +kubebuilder:printcolumn:name="Action",type=string,JSONPath=`.spec.action`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.status.nodeName`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Agent",type=string,JSONPath=`.status.agents`,priority=1
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.reason`,priority=1
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.message`,priority=1
// +kubebuilder:selectablefield:JSONPath=`.spec.target`
// +kubebuilder:selectablefield:JSONPath=`.spec.action`
// +kubebuilder:selectablefield:JSONPath=`.status.nodeName`
type GuestAgentCommand struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is the standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitzero"`

	// spec is the request; immutable.
	// +required
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec is immutable; create a new command (generateName) instead"
	Spec GuestAgentCommandSpec `json:"spec"`

	// status is the outcome.
	// +optional
	Status GuestAgentCommandStatus `json:"status,omitzero"`
}

// GuestAgentCommandList is a list of GuestAgentCommand.
//
// +kubebuilder:object:root=true
type GuestAgentCommandList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitzero"`
	Items           []GuestAgentCommand `json:"items"`
}
