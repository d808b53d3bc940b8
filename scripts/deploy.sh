#!/usr/bin/env bash
# Build the cgchat Lambda image, push it to ECR and roll it out (docs/DEPLOY.md walks through it).
#
#   scripts/deploy.sh [all]     build + push, then update both functions (or create the stack, first time)
#   scripts/deploy.sh build     docker build (linux/amd64, --provenance=false --sbom=false)
#   scripts/deploy.sh push      create the ECR repository if needed, log in, push, print the image digest URI
#   scripts/deploy.sh update    point both functions at the pushed image (aws lambda update-function-code)
#   scripts/deploy.sh stack     create/update the CloudFormation stack (template.yaml) with the pushed image
#   scripts/deploy.sh policy    print iam_policy.json for this account/region/environment
#
# Environment:
#   AWS_REGION        (required; AWS_DEFAULT_REGION is accepted) region of ECR, Lambda and the stack
#   CGCHAT_ENV        environment name, as the template's EnvironmentName (default: prod)
#   ECR_REPOSITORY    repository name (default: cgchat)
#   IMAGE_TAG         tag to build/push (default: the git commit, e.g. 3f2c1ab, "-dirty" when uncommitted)
#   CLIP_SOURCE       optional: bake CLIP in (a hub id needs internet during the build, or a folder in the repo)
#   STACK_NAME        (stack) default: cgchat-$CGCHAT_ENV
#   VPC_ID, SUBNET_IDS  (stack, first deploy) the VPC and its private subnets, comma-separated
#   STACK_PARAMETERS  (stack) more Key=Value template parameters, space-separated
#   API_FUNCTION, WORKER_FUNCTION  (update) default: cgchat-$CGCHAT_ENV-api, cgchat-$CGCHAT_ENV-ingest
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$here/.." && pwd)"

die() {
    echo "deploy.sh: error: $*" >&2
    exit 1
}

log() {
    echo "==> $*" >&2
}

need_cmd() {
    command -v "$1" > /dev/null 2>&1 || die "'$1' is not installed or not on PATH. $2"
}

# Settings are resolved into globals by these functions, in the main shell (never inside $(...), where
# a failing check would only end a subshell and the script would go on with an empty value).
REGION="" ACCOUNT_ID="" ENV_NAME="" TAG="" REPO="" REGISTRY="" IMAGE_URI="" STACK=""

resolve_region() {
    REGION="${AWS_REGION:-${AWS_DEFAULT_REGION:-}}"
    [[ -n "$REGION" ]] || die "AWS_REGION is not set (e.g. export AWS_REGION=us-east-1): the region of ECR, Lambda and the stack."
}

resolve_env() {
    ENV_NAME="${CGCHAT_ENV:-prod}"
    [[ "$ENV_NAME" =~ ^[a-z][a-z0-9-]{1,11}$ ]] \
        || die "CGCHAT_ENV='$ENV_NAME' must be 2-12 lower case letters, digits or dashes, starting with a letter (the template's EnvironmentName)."
}

resolve_account() {
    need_cmd aws "Install the AWS CLI v2: https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html"
    resolve_region
    ACCOUNT_ID="$(aws sts get-caller-identity --query Account --output text 2> /dev/null)" || ACCOUNT_ID=""
    [[ "$ACCOUNT_ID" =~ ^[0-9]{12}$ ]] \
        || die "no usable AWS credentials (aws sts get-caller-identity failed). Configure them: aws configure, AWS_PROFILE, or SSO (aws sso login)."
    REGISTRY="$ACCOUNT_ID.dkr.ecr.$REGION.amazonaws.com"
}

resolve_image() {
    REPO="${ECR_REPOSITORY:-cgchat}"
    [[ "$REPO" =~ ^[a-z0-9][a-z0-9._/-]*$ ]] || die "ECR_REPOSITORY='$REPO' is not a valid repository name (lower case, digits, . _ / -)."
    if [[ -n "${IMAGE_TAG:-}" ]]; then
        TAG="$IMAGE_TAG"
    elif command -v git > /dev/null 2>&1 && git -C "$repo_root" rev-parse --short HEAD > /dev/null 2>&1; then
        TAG="$(git -C "$repo_root" rev-parse --short HEAD)"
        if [[ -n "$(git -C "$repo_root" status --porcelain --untracked-files=no)" ]]; then
            TAG="$TAG-dirty"
        fi
    else
        die "IMAGE_TAG is not set and $repo_root is not a git checkout: export IMAGE_TAG=<tag>."
    fi
    [[ "$TAG" =~ ^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$ ]] || die "IMAGE_TAG='$TAG' is not a valid image tag."
}

check_docker() {
    need_cmd docker "Build on a machine with a Docker engine (Docker Desktop, or docker-ce with the buildx plugin)."
    docker info > /dev/null 2>&1 \
        || die "the Docker engine is not reachable (docker info failed): start Docker, or check DOCKER_HOST and access to its socket."
    docker buildx version > /dev/null 2>&1 \
        || die "docker buildx is missing: --provenance=false --sbom=false need BuildKit's buildx plugin (docker-buildx-plugin)."
}

cmd_build() {
    check_docker
    resolve_image
    local -a args=(--platform linux/amd64 --provenance=false --sbom=false -t "cgchat:$TAG")
    if [[ -n "${CLIP_SOURCE:-}" ]]; then
        args+=(--build-arg "CLIP_SOURCE=$CLIP_SOURCE")
    fi
    # --provenance=false --sbom=false: with attestations BuildKit pushes an OCI image index, which Lambda
    # rejects; --platform linux/amd64: the functions are x86_64, whatever machine builds the image.
    log "docker build ${args[*]} $repo_root"
    docker build "${args[@]}" "$repo_root" || die "docker build failed (see the output above)."
}

ensure_repository() {
    if ! aws ecr describe-repositories --region "$REGION" --repository-names "$REPO" > /dev/null 2>&1; then
        log "creating ECR repository $REPO"
        aws ecr create-repository --region "$REGION" --repository-name "$REPO" \
            --image-scanning-configuration scanOnPush=true --encryption-configuration encryptionType=AES256 \
            > /dev/null || die "could not create ECR repository '$REPO' (needs ecr:CreateRepository)."
    fi
}

# IMAGE_URI := the pushed image by digest (a tag can move; a digest names exactly what was tested).
resolve_image_uri() {
    resolve_account
    resolve_image
    local digest
    digest="$(aws ecr describe-images --region "$REGION" --repository-name "$REPO" --image-ids "imageTag=$TAG" \
        --query 'imageDetails[0].imageDigest' --output text 2> /dev/null)" || digest=""
    [[ "$digest" == sha256:* ]] \
        || die "image $REPO:$TAG is not in ECR ($REGISTRY): run 'scripts/deploy.sh push' first, or set IMAGE_TAG to a pushed tag."
    IMAGE_URI="$REGISTRY/$REPO@$digest"
}

check_manifest() {
    local media
    media="$(aws ecr batch-get-image --region "$REGION" --repository-name "$REPO" --image-ids "imageTag=$TAG" \
        --query 'images[0].imageManifestMediaType' --output text 2> /dev/null)" || media="unknown"
    case "$media" in
        application/vnd.docker.distribution.manifest.v2+json | application/vnd.oci.image.manifest.v1+json) ;;
        *index* | *manifest.list*)
            die "$REPO:$TAG was pushed as a multi-platform index ($media), which Lambda rejects: rebuild with --platform linux/amd64 --provenance=false --sbom=false (scripts/deploy.sh build)." ;;
        *) log "warning: could not check the manifest type of $REPO:$TAG ($media)" ;;
    esac
}

cmd_push() {
    check_docker
    resolve_account
    resolve_image
    docker image inspect "cgchat:$TAG" > /dev/null 2>&1 || die "no local image cgchat:$TAG: run 'scripts/deploy.sh build' first."
    ensure_repository
    log "docker login $REGISTRY"
    aws ecr get-login-password --region "$REGION" | docker login --username AWS --password-stdin "$REGISTRY" > /dev/null \
        || die "docker login to $REGISTRY failed (needs ecr:GetAuthorizationToken)."
    docker tag "cgchat:$TAG" "$REGISTRY/$REPO:$TAG"
    log "docker push $REGISTRY/$REPO:$TAG"
    docker push "$REGISTRY/$REPO:$TAG" \
        || die "docker push failed (needs ecr:BatchCheckLayerAvailability, InitiateLayerUpload, UploadLayerPart, CompleteLayerUpload, PutImage)."
    check_manifest
    resolve_image_uri
    log "pushed $IMAGE_URI"
    echo "$IMAGE_URI"
}

stack_name() {
    STACK="${STACK_NAME:-cgchat-$ENV_NAME}"
}

stack_exists() {
    aws cloudformation describe-stacks --region "$REGION" --stack-name "$STACK" > /dev/null 2>&1
}

cmd_update() {
    resolve_env
    resolve_image_uri
    local fn
    for fn in "${API_FUNCTION:-cgchat-$ENV_NAME-api}" "${WORKER_FUNCTION:-cgchat-$ENV_NAME-ingest}"; do
        aws lambda get-function --region "$REGION" --function-name "$fn" > /dev/null 2>&1 \
            || die "Lambda function '$fn' not found in $REGION: create the stack first (scripts/deploy.sh stack), or set API_FUNCTION/WORKER_FUNCTION."
        log "aws lambda update-function-code --function-name $fn --image-uri $IMAGE_URI"
        aws lambda update-function-code --region "$REGION" --function-name "$fn" --image-uri "$IMAGE_URI" > /dev/null \
            || die "update-function-code failed for $fn."
        aws lambda wait function-updated --region "$REGION" --function-name "$fn" \
            || die "$fn did not become ready with the new image: aws lambda get-function-configuration --function-name $fn (LastUpdateStatusReason)."
    done
    log "both functions run $IMAGE_URI"
    log "the stack's ImageUri parameter still names the previous image until the next 'scripts/deploy.sh stack'"
}

cmd_stack() {
    resolve_env
    resolve_image_uri
    stack_name
    local -a params=("EnvironmentName=$ENV_NAME" "ImageUri=$IMAGE_URI")
    if [[ -n "${VPC_ID:-}" ]]; then
        params+=("VpcId=$VPC_ID")
    fi
    if [[ -n "${SUBNET_IDS:-}" ]]; then
        params+=("SubnetIds=$SUBNET_IDS")
    fi
    if ! stack_exists && { [[ -z "${VPC_ID:-}" ]] || [[ -z "${SUBNET_IDS:-}" ]]; }; then
        die "stack $STACK does not exist yet: set VPC_ID and SUBNET_IDS (private subnets in two or more AZs, comma-separated) for the first deploy."
    fi
    if [[ -n "${STACK_PARAMETERS:-}" ]]; then
        local -a extra
        read -r -a extra <<< "$STACK_PARAMETERS"
        params+=("${extra[@]}")
    fi
    log "aws cloudformation deploy --stack-name $STACK --template-file template.yaml (ImageUri=$IMAGE_URI)"
    aws cloudformation deploy --region "$REGION" --stack-name "$STACK" \
        --template-file "$repo_root/template.yaml" \
        --capabilities CAPABILITY_NAMED_IAM \
        --no-fail-on-empty-changeset \
        --parameter-overrides "${params[@]}" \
        || die "stack deploy failed: aws cloudformation describe-stack-events --stack-name $STACK --max-items 20"
    # A stack update does not redeploy a REST API by itself: publish the current methods to the stage.
    local api stage
    api="$(aws cloudformation describe-stacks --region "$REGION" --stack-name "$STACK" \
        --query "Stacks[0].Outputs[?OutputKey=='RestApiId'].OutputValue" --output text)" || die "cannot read the stack outputs of $STACK."
    stage="$(aws cloudformation describe-stacks --region "$REGION" --stack-name "$STACK" \
        --query "Stacks[0].Outputs[?OutputKey=='ApiStageName'].OutputValue" --output text)" || die "cannot read the stack outputs of $STACK."
    aws apigateway create-deployment --region "$REGION" --rest-api-id "$api" --stage-name "$stage" \
        --description "scripts/deploy.sh $TAG" > /dev/null || die "could not redeploy REST API $api to stage $stage."
    aws cloudformation describe-stacks --region "$REGION" --stack-name "$STACK" \
        --query 'Stacks[0].Outputs[].[OutputKey,OutputValue]' --output table
}

cmd_policy() {
    local file="$repo_root/iam_policy.json"
    [[ -f "$file" ]] || die "$file is missing."
    resolve_env
    resolve_account
    sed -e "s/{{REGION}}/$REGION/g" -e "s/{{ACCOUNT_ID}}/$ACCOUNT_ID/g" -e "s/{{ENV}}/$ENV_NAME/g" "$file"
}

main() {
    local command="${1:-all}"
    case "$command" in
        build) cmd_build ;;
        push) cmd_push ;;
        update) cmd_update ;;
        stack) cmd_stack ;;
        policy) cmd_policy ;;
        all)
            resolve_env
            resolve_account
            stack_name
            cmd_build
            cmd_push > /dev/null
            if stack_exists; then
                cmd_update
            else
                cmd_stack
            fi
            ;;
        -h | --help | help) sed -n '2,21p' "${BASH_SOURCE[0]}" ;;
        *) die "unknown command '$command' (build, push, update, stack, policy, all; --help)" ;;
    esac
}

main "$@"
