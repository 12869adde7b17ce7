package virt

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"strings"

	"libvirt.org/go/libvirtxml"

	"guestagent.io/operator/agentd/guest"
	"guestagent.io/operator/api/v1alpha1"
)

// XMLInfo is what agentd reads from a domain's (live) XML.
type XMLInfo struct {
	UUID, Name     string
	HasQGAChannel  bool
	QGAChannelHint guest.ChannelState
	OGASocketPath  string
	OGAChannelName string
	Placement      Placement
	// Balloon is true when the domain has a memory balloon device (<memballoon> with a model
	// other than "none"); BalloonStatsPeriod is its statistics period in seconds (<stats
	// period=…/>, 0 when absent: QEMU does not poll the guest's balloon driver).
	Balloon            bool
	BalloonStatsPeriod int
}

// ParseDomainXML extracts XMLInfo from a domain XML document. A malformed placement element is
// ignored (defaults apply); a malformed document is an error.
func ParseDomainXML(doc string) (XMLInfo, error) {
	var d libvirtxml.Domain
	if err := d.Unmarshal(doc); err != nil {
		return XMLInfo{}, fmt.Errorf("parse domain XML: %w", err)
	}
	info := XMLInfo{UUID: d.UUID, Name: d.Name, QGAChannelHint: guest.ChannelUnknown, Placement: Placement{Publish: true}}
	var ogaPath, legacyPath string
	if d.Devices != nil {
		for _, ch := range d.Devices.Channels {
			if ch.Target == nil || ch.Target.VirtIO == nil {
				continue
			}
			name := ch.Target.VirtIO.Name
			switch name {
			case QGAChannelName:
				info.HasQGAChannel = true
				switch ch.Target.VirtIO.State {
				case "connected":
					info.QGAChannelHint = guest.ChannelConnected
				case "disconnected":
					info.QGAChannelHint = guest.ChannelDisconnected
				}
			case OGAChannelName, OGALegacyChannelName:
				// Only a unix socket the host can dial counts; never guess a path.
				if ch.Source == nil || ch.Source.UNIX == nil || ch.Source.UNIX.Path == "" {
					continue
				}
				if name == OGAChannelName && ogaPath == "" {
					ogaPath = ch.Source.UNIX.Path
				} else if name == OGALegacyChannelName && legacyPath == "" {
					legacyPath = ch.Source.UNIX.Path
				}
			}
		}
	}
	if d.Devices != nil && d.Devices.MemBalloon != nil && d.Devices.MemBalloon.Model != "" && d.Devices.MemBalloon.Model != "none" {
		info.Balloon = true
		if st := d.Devices.MemBalloon.Stats; st != nil {
			info.BalloonStatsPeriod = int(min(st.Period, 1<<30))
		}
	}
	switch {
	case ogaPath != "":
		info.OGASocketPath, info.OGAChannelName = ogaPath, OGAChannelName
	case legacyPath != "":
		info.OGASocketPath, info.OGAChannelName = legacyPath, OGALegacyChannelName
	}
	if d.Metadata != nil {
		if p, ok := parsePlacement(d.Metadata.XML); ok {
			info.Placement = p
		}
	}
	return info, nil
}

// parsePlacement finds <placement> in our namespace inside the <metadata> inner XML.
func parsePlacement(inner string) (Placement, bool) {
	dec := xml.NewDecoder(strings.NewReader(inner))
	depth := 0
	for {
		tok, err := dec.Token()
		if err != nil { // io.EOF: no placement element; anything else: malformed, ignored
			return Placement{}, false
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 1 && t.Name.Space == v1alpha1.MetadataNamespaceURI && t.Name.Local == "placement" {
				p := Placement{Publish: true}
				for _, a := range t.Attr {
					if a.Name.Space != "" && a.Name.Space != v1alpha1.MetadataNamespaceURI {
						continue
					}
					switch a.Name.Local {
					case "namespace":
						p.Namespace = strings.TrimSpace(a.Value)
					case "publish":
						v := strings.ToLower(strings.TrimSpace(a.Value))
						p.Publish = v != "false" && v != "0" && v != "no"
					}
				}
				return p, true
			}
		case xml.EndElement:
			depth--
		}
	}
}

// PlacementXML renders the metadata element for p (without the enclosing <metadata>), in the
// form virDomainSetMetadata expects with key "ga" and our namespace URI.
func PlacementXML(p Placement) string {
	var b bytes.Buffer
	b.WriteString("<placement")
	if p.Namespace != "" {
		b.WriteString(` namespace="`)
		_ = xml.EscapeText(&b, []byte(p.Namespace))
		b.WriteString(`"`)
	}
	if !p.Publish {
		b.WriteString(` publish="false"`)
	}
	b.WriteString("/>")
	return b.String()
}
