package redis

import "github.com/llmhttp/llmhttp"

// canDecline reports whether the core's [llmhttp.Grant] can tell that a
// reservation was declined (see Settings.Horizon). Until it can, every
// reservation stands, however long its wait, and a server report above the
// shared level is not believed.
//
// To switch declines on once Grant has a Declined field: set canDecline to
// true and have setReserved set g.Declined = !reserved.
const canDecline = false

// setReserved records in g whether the reservation was debited.
func setReserved(g *llmhttp.Grant, reserved bool) {}
