„
"servey

n0Placeholder

n1Const

n2MatMul

n3Identity

n4SaveV2

n5	RestoreV2

n6ShardedFilename"¿