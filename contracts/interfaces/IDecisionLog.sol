// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title Registry of scoring models and log of the automated decisions they made.
interface IDecisionLog {
    error DecisionNotPartner(address account);
    error DecisionUnknownModel(uint256 modelId);
    error DecisionZeroModelHash();
    error DecisionLengthMismatch();
    error DecisionEmptyBatch();
    error DecisionInvalidMember();
    error DecisionScoreOutOfRange(uint32 scoreBps);
    error DecisionNotRegistrant(uint256 modelId, address registrant, address account);
    error DecisionConsentRequired(bytes32 member, address partner);

    event ModelRegistered(
        uint256 indexed modelId,
        address indexed registrant,
        bytes32 modelHash,
        bytes32 cardHash,
        bytes32 trainingRoot
    );
    event DecisionRecorded(
        bytes32 indexed member,
        uint256 indexed modelId,
        address indexed partner,
        bytes32 inputRoot,
        uint32 scoreBps,
        bytes32 action,
        bytes32 explanationHash
    );

    function registerModel(bytes32 modelHash, bytes32 cardHash, bytes32 trainingRoot) external returns (uint256 modelId);

    function recordDecisions(
        uint256 modelId,
        bytes32[] calldata members,
        bytes32[] calldata inputRoots,
        uint32[] calldata scoresBps,
        bytes32[] calldata actions,
        bytes32[] calldata explanationHashes
    ) external;
}
