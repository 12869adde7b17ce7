// Package v1alpha1 contains the guestagent.io/v1alpha1 API: GuestAgentStatus (what the guest
// agents of one libvirt domain report, written by agentd) and GuestAgentCommand (a request to a
// guest, declared by users or GitOps tools). It owns types, validation markers and the constants
// shared by agentd and the controllers; it imports no controller-runtime.
//
// +kubebuilder:object:generate=true
// +kubebuilder:ac:generate=true
// +kubebuilder:ac:output:package=../applyconfiguration
// +groupName=guestagent.io
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of this API.
	GroupVersion = schema.GroupVersion{Group: "guestagent.io", Version: "v1alpha1"}

	// SchemeGroupVersion is GroupVersion under the name generated code (apply configurations) uses.
	SchemeGroupVersion = GroupVersion

	// SchemeBuilder registers this API's types.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds this API's types to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(scheme *runtime.Scheme) error {
	scheme.AddKnownTypes(GroupVersion,
		&GuestAgentStatus{}, &GuestAgentStatusList{},
		&GuestAgentCommand{}, &GuestAgentCommandList{},
	)
	metav1.AddToGroupVersion(scheme, GroupVersion)
	return nil
}
