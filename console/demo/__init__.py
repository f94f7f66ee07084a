"""The demo: a real shop app (shipped as plain files in `shop/`), a trunk repository with a
history to deploy (`trunk`), and shoppers to send it traffic (`traffic`)."""
