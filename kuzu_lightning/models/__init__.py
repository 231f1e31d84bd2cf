"""The networks (plain ``nn.Module``) and the LightningModules around them."""
