module green/benches/peers/go

go 1.19
