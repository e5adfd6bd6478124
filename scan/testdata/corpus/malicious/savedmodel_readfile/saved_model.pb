P
"serveE

n0Placeholder

n1Const

n2ReadFile

n3Identity"¿