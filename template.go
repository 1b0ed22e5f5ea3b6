// Package fusillade holds what belongs to the repository as a whole rather than to one package:
// the SAM template that deploys it, embedded so that the local stack runs with the queue and
// event-source settings of the deployment instead of copies of them.
package fusillade

import _ "embed"

// Template is template.yaml, the deployment's one statement of its queues, event sources,
// schedules and function timeouts. Read it with deploy/samtemplate.
//
//go:embed template.yaml
var Template []byte
