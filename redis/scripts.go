package redis

import (
	_ "embed"

	goredis "github.com/redis/go-redis/v9"
)

// The scripts run with EVALSHA (EVAL the first time after Redis lost its
// script cache): one round trip each.
var (
	//go:embed lua/reserve.lua
	reserveLua    string
	reserveScript = goredis.NewScript(reserveLua)

	//go:embed lua/settle.lua
	settleLua    string
	settleScript = goredis.NewScript(settleLua)

	//go:embed lua/budget.lua
	budgetLua    string
	budgetScript = goredis.NewScript(budgetLua)
)
