# jupyter-faas in a hub user's container: no Docker engine here, so builds, local tests
# and pushes go through the hub's faas service (HubBuilder, which finds the service in
# $FAAS_HUB_SERVICE_URL and the user in $JUPYTERHUB_API_TOKEN). Deploys and invocations
# use the namespace key the container got at its start ($__OW_API_HOST, $__OW_API_KEY).
c = get_config()  # noqa: F821
c.FaaSWorkspace.builder_class = "hub"
