package testbed

// MultinetNamespace is the namespace deploy/ installs multinet into.
const MultinetNamespace = "multinet"
