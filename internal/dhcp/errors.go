package dhcp

import "github.com/multinet/multinet/internal/cniapi"

// cniError gives err a CNI error code; the message is err's whole chain.
var cniError = cniapi.Coded

// ToCNI maps any error of the manager to the CNI error the plugin returns.
var ToCNI = cniapi.ToCNI
